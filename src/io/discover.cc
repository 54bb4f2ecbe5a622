#include "io/discover.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <utility>

#include "common/string_index.h"
#include "io/formats.h"
#include "vislint/status.h"

namespace fs = std::filesystem;

namespace vislint::io {
namespace {

bool ends_with_ci(const std::string& s, const std::string& suffix) {
    if (s.size() < suffix.size()) return false;
    for (size_t i = 0; i < suffix.size(); ++i)
        if (std::tolower((unsigned char)s[s.size() - suffix.size() + i]) != suffix[i]) return false;
    return true;
}


std::string join(const std::string& dir, const std::string& name) {
    if (!dir.empty() && dir.back() == '/') return dir + name;
    return dir + "/" + name;
}

std::string parent_of(const std::string& path) {
    size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return "";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

class Walker {
public:
    // `dedupe` false: the caller walks one folder, where every path is found once (each folder is
    // entered once and names within a folder differ), so the set of paths seen is not kept.
    Walker(Discovery* out, std::string exclude, bool dedupe)
        : out_(out), exclude_(std::move(exclude)), dedupe_(dedupe) {}

    void add(const std::string& path, uint32_t root_length = 0, FileStat stat = {}) {
        if (!dedupe_ || seen_.insert(path).second) {
            out_->files.push_back(path);
            out_->root_length.push_back(root_length);
            out_->stat.push_back(stat);
        }
    }

    void walk_root(const std::string& dir) {
        root_ = uint32_t(dir.size() + (dir.back() == '/' ? 0 : 1));
        walk(dir);
        root_ = 0;
    }

    void walk(const std::string& dir) {
        struct stat st;
        if (::stat(dir.c_str(), &st) != 0) return;
        if (!visited_.insert({st.st_dev, st.st_ino}).second) {
            out_->warnings.push_back("folder visited before, not entered again (symlink loop?): " + dir);
            return;
        }
        DIR* d = ::opendir(dir.c_str());
        if (!d) {
            out_->warnings.push_back("cannot open folder: " + dir);
            return;
        }
        // Each entry with its type from the directory itself: only symlinks (and entries of
        // unknown type) can lead out of an input. Every image file is stat'ed once, relative to
        // the open folder (no walk of the whole path per file), for the plan's size and mtime.
        std::vector<std::pair<std::string, unsigned char>> entries;
        while (dirent* e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name == "." || name == "..") continue;
            entries.emplace_back(std::move(name), e->d_type);
        }
        std::sort(entries.begin(), entries.end());
        walk_entries(dir, ::dirfd(d), entries);
        ::closedir(d);
    }

private:
    static FileStat stat_of(const struct stat& st) {
        return {true, int64_t(st.st_size), int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
    }

    void walk_entries(const std::string& dir, int dir_fd,
                      const std::vector<std::pair<std::string, unsigned char>>& entries) {
        for (const auto& [name, type] : entries) {
            std::string path = join(dir, name);
            const bool link = type == DT_LNK || type == DT_UNKNOWN;
            if (!exclude_.empty() && link && points_into_exclude(path)) {
                out_->warnings.push_back("not scanned: " + path + " points into the work dir " + exclude_);
                continue;
            }
            struct stat es;
            bool exists = type != DT_REG && ::stat(path.c_str(), &es) == 0; // follows symlinks
            if (exists && S_ISDIR(es.st_mode)) {
                walk(path);
            } else if (has_image_extension(name)) {
                FileStat file;
                if (exists) file = stat_of(es);
                else if (type == DT_REG && ::fstatat(dir_fd, name.c_str(), &es, 0) == 0) file = stat_of(es);
                else file.known = true; // a dangling symlink (an `unreadable` row) or a vanished file
                add(path, root_, file);
            } else {
                ++out_->skipped_files;
                if (out_->skipped_examples.size() < 5) out_->skipped_examples.push_back(path);
            }
        }
    }

    bool points_into_exclude(const std::string& path) const {
        char* real = ::realpath(path.c_str(), nullptr);
        if (!real) return false; // dangling: becomes an `unreadable` row
        std::string r = real;
        std::free(real);
        return r == exclude_ || (r.size() > exclude_.size() && r.compare(0, exclude_.size(), exclude_) == 0 &&
                                 r[exclude_.size()] == '/');
    }

    Discovery* out_;
    std::string exclude_; // real path of the work dir, or empty
    bool dedupe_;
    StringIndex seen_;
    std::set<std::pair<dev_t, ino_t>> visited_;
    uint32_t root_ = 0;
};

// Whether one path can be found twice: a file given directly or in a list (a list can name one
// file twice, or a file inside a folder input), or a folder inside another. Paths are spelled
// from their input (symlinks are not resolved), so folders side by side cannot share a path.
bool needs_dedupe(const std::vector<std::string>& inputs) {
    std::vector<std::string> dirs;
    for (const std::string& given : inputs) {
        struct stat st;
        if (::stat(given.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return true;
        std::string dir = absolute_path(given);
        if (dir.back() != '/') dir += '/'; // "/" stays "/"
        dirs.push_back(std::move(dir));
    }
    std::sort(dirs.begin(), dirs.end()); // a folder sorts right before the folders inside it
    for (size_t i = 1; i < dirs.size(); ++i)
        if (dirs[i].compare(0, dirs[i - 1].size(), dirs[i - 1]) == 0) return true;
    return false;
}

} // namespace

std::string absolute_path(const std::string& path) {
    std::error_code ec;
    fs::path abs = fs::absolute(path, ec);
    std::string s = (ec ? fs::path(path) : abs).lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') s.pop_back(); // "dir/" normalises to "dir/"
    return s;
}

std::string resolve_path(const std::string& base_dir, const std::string& path) {
    if (base_dir.empty() || (!path.empty() && path[0] == '/')) return absolute_path(path);
    return absolute_path((fs::path(base_dir) / path).string());
}

bool has_image_extension(const std::string& path) {
    return format_from_extension(path) != Format::kUnknown;
}

bool is_list_file(const std::string& path) {
    return ends_with_ci(path, ".txt") || ends_with_ci(path, ".lst") || ends_with_ci(path, ".list");
}

std::vector<std::string> read_list_file(const std::string& given) {
    const std::string input = absolute_path(given);
    std::ifstream in(input);
    if (!in) throw Error("cannot read list file: " + given);
    std::vector<std::string> out;
    std::string base = parent_of(input), line;
    while (std::getline(in, line)) {
        while (!line.empty() && std::isspace((unsigned char)line.back())) line.pop_back();
        size_t b = 0;
        while (b < line.size() && std::isspace((unsigned char)line[b])) ++b;
        line = line.substr(b);
        if (line.empty() || line[0] == '#') continue;
        out.push_back(absolute_path(line[0] == '/' ? line : join(base, line)));
    }
    return out;
}

Discovery discover(const std::vector<std::string>& inputs, const std::string& exclude_dir) {
    Discovery out;
    std::string exclude;
    if (!exclude_dir.empty()) {
        std::error_code ec;
        exclude = std::filesystem::weakly_canonical(std::filesystem::absolute(exclude_dir), ec).string();
        while (exclude.size() > 1 && exclude.back() == '/') exclude.pop_back();
    }
    if (inputs.empty()) throw Error("no input given: pass one or more folders, images or list files");
    Walker walker(&out, exclude, needs_dedupe(inputs));
    for (const std::string& given : inputs) {
        struct stat st;
        if (given.empty() || ::stat(given.c_str(), &st) != 0)
            throw Error("input not found: " + given);
        // Every path found below is absolute and normalised from here on, so that one file is
        // one item however its folder was spelled (messages still quote the input as given).
        const std::string input = absolute_path(given);
        struct stat nst;
        if (::stat(input.c_str(), &nst) != 0 || nst.st_dev != st.st_dev || nst.st_ino != st.st_ino)
            throw Error("input " + given + " is another file once normalised to " + input +
                        " ('..' after a symlink is taken lexically); pass it without '..'");
        if (S_ISDIR(st.st_mode)) {
            walker.walk_root(input);
        } else if (has_image_extension(input)) {
            walker.add(input);
        } else if (is_list_file(input)) {
            for (const std::string& path : read_list_file(given)) walker.add(path);
        } else {
            // A single file without an image extension: accept it when its content is an image.
            std::ifstream in(input, std::ios::binary);
            char head[16] = {0};
            in.read(head, sizeof(head));
            if (sniff_format(reinterpret_cast<uint8_t*>(head), size_t(in.gcount())) == Format::kUnknown)
                throw Error("input is neither a folder, an image nor a list file (.txt/.lst): " + given);
            walker.add(input);
        }
    }
    return out;
}

} // namespace vislint::io
