// Finding the image files of the inputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vislint::io {

// Size and modification time of a file, read while its folder was walked (one fstatat per
// entry, relative to the open folder); `known` is false for files given directly or listed.
struct FileStat {
    bool known = false;
    int64_t size = -1; // -1: the stat failed (a dangling symlink, a vanished file)
    int64_t mtime_ns = 0;
};

struct Discovery {
    // Image files in a deterministic order: inputs in the order given; inside a folder, entries
    // sorted by name (bytewise) and walked depth-first. Every path is absolute and lexically
    // normalised (absolute_path()), so "./a/../a/x.png", "a/x.png" and "/abs/a/x.png" are one
    // file, found once. Symlinks are kept as they are spelled, not resolved.
    std::vector<std::string> files;
    // Per file: length of the input folder prefix it was found under (including the '/'), 0 for
    // files given directly or through a list file. Lets splits be read from the path below it.
    std::vector<uint32_t> root_length;
    std::vector<FileStat> stat; // per file
    uint64_t skipped_files = 0;             // files without an image extension under folders
    std::vector<std::string> skipped_examples; // the first few of them
    std::vector<std::string> warnings;      // symlink loops, unreadable folders, ...
};

// Inputs are folders (walked recursively, following symlinks; a folder already visited, e.g.
// through a symlink loop, is not entered again), image files, or list files (.txt/.lst/.list:
// one path per line, '#' comments, relative paths resolve against the list's folder; every
// listed path is kept, even a missing one, so it surfaces as a broken row).
// Throws vislint::Error when an input does not exist or is not usable. A symlink inside a folder
// that resolves into `exclude_dir` (the work dir) is left out with a warning: vislint never
// scans its own output. `threads` > 1 walks the sub-folders of a folder input in parallel, with
// the same result as one thread.
Discovery discover(const std::vector<std::string>& inputs, const std::string& exclude_dir = "",
                   int threads = 1);

// `path` made absolute against the current directory and lexically normalised ("." and ".."
// components and repeated or trailing slashes removed), without resolving symlinks.
std::string absolute_path(const std::string& path);

// absolute_path() of `path`, a relative one taken against `base_dir` ("" = the current directory).
std::string resolve_path(const std::string& base_dir, const std::string& path);

// True when the file name has an extension vislint decodes.
bool has_image_extension(const std::string& path);

// The entries of a list file (.txt / .lst / .list: one path per line, relative to the list's
// folder; blank lines and '#' comments skipped), absolute and normalised, in file order.
// Throws vislint::Error when it cannot be read.
std::vector<std::string> read_list_file(const std::string& given);
bool is_list_file(const std::string& path); // by extension: .txt, .lst, .list

} // namespace vislint::io
