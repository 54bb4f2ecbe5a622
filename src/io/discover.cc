#include "io/discover.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <thread>
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

    void walk_root(const std::string& dir, int threads) {
        root_ = uint32_t(dir.size() + (dir.back() == '/' ? 0 : 1));
        if (threads < 2 || dedupe_ || !walk_parallel(dir, threads)) walk(dir);
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
        walk_entries(dir, ::dirfd(d), sorted_entries(d));
        ::closedir(d);
    }

private:
    using Entries = std::vector<std::pair<std::string, unsigned char>>;

    static Entries sorted_entries(DIR* d) {
        Entries entries;
        while (dirent* e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name == "." || name == "..") continue;
            entries.emplace_back(std::move(name), e->d_type);
        }
        std::sort(entries.begin(), entries.end());
        return entries;
    }

    // The root's sub-folders walked on `threads` threads, each into a Discovery of its own, then
    // joined in the serial walk's order, so the result is the serial walk's. That holds only when
    // no folder can be reached twice: a walk that meets a symlink (or an entry of unknown type),
    // or two sub-walks that entered one folder (a bind mount), returns false after all and the
    // caller walks serially (the parallel work is thrown away). A re-scan of 1 M files spends
    // most of its fixed cost here (issue 12), and a folder of folders is the common layout.
    bool walk_parallel(const std::string& dir, int threads) {
        struct stat st;
        if (::stat(dir.c_str(), &st) != 0) return false;
        const std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
        if (!d) return false;
        const Entries entries = sorted_entries(d.get());
        std::vector<size_t> subdirs;
        for (size_t i = 0; i < entries.size(); ++i) {
            if (entries[i].second == DT_LNK || entries[i].second == DT_UNKNOWN) return false;
            if (entries[i].second == DT_DIR) subdirs.push_back(i);
        }
        if (subdirs.size() < 2) return false;
        struct Part {
            Discovery found;
            std::unique_ptr<Walker> walker;
        };
        std::vector<Part> parts(subdirs.size());
        std::atomic<size_t> next{0};
        auto work = [&] {
            for (size_t j; (j = next.fetch_add(1)) < subdirs.size();) {
                Part& part = parts[j];
                part.walker = std::make_unique<Walker>(&part.found, exclude_, false);
                part.walker->root_ = root_;
                part.walker->visited_.insert({st.st_dev, st.st_ino});
                part.walker->walk(join(dir, entries[subdirs[j]].first));
            }
        };
        std::vector<std::thread> pool;
        for (int t = 1; t < std::min<int>(threads, int(subdirs.size())); ++t) pool.emplace_back(work);
        work();
        for (auto& th : pool) th.join();
        std::set<std::pair<dev_t, ino_t>> entered{{st.st_dev, st.st_ino}};
        for (const Part& part : parts) {
            if (part.walker->saw_link_) return false;
            for (const auto& v : part.walker->visited_)
                if (v != std::pair{st.st_dev, st.st_ino} && !entered.insert(v).second) return false;
        }
        // Joined in order: the root's own entries, each sub-folder's files where it sorts.
        visited_.insert(entered.begin(), entered.end());
        size_t j = 0;
        for (size_t i = 0; i < entries.size(); ++i) {
            if (j < subdirs.size() && subdirs[j] == i) {
                append(std::move(parts[j++].found));
                continue;
            }
            walk_entries(dir, ::dirfd(d.get()), Entries{entries[i]});
        }
        return true;
    }

    void append(Discovery&& part) {
        auto move_all = [](auto& to, auto& from) {
            to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
        };
        move_all(out_->files, part.files);
        move_all(out_->root_length, part.root_length);
        move_all(out_->stat, part.stat);
        move_all(out_->warnings, part.warnings);
        out_->skipped_files += part.skipped_files;
        for (auto& e : part.skipped_examples)
            if (out_->skipped_examples.size() < 5) out_->skipped_examples.push_back(std::move(e));
    }

    static FileStat stat_of(const struct stat& st) {
        return {true, int64_t(st.st_size), int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
    }

    void walk_entries(const std::string& dir, int dir_fd, const Entries& entries) {
        for (const auto& [name, type] : entries) {
            std::string path = join(dir, name);
            const bool link = type == DT_LNK || type == DT_UNKNOWN;
            saw_link_ = saw_link_ || link;
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
    bool saw_link_ = false; // an entry that may lead to a folder reached another way
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

Discovery discover(const std::vector<std::string>& inputs, const std::string& exclude_dir, int threads) {
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
            walker.walk_root(input, threads);
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
