#include "store/work_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>
#include <fstream>
#include <map>
#include <mutex>

#include "store/db.h"
#include "store/features.h"
#include "vislint/status.h"

namespace fs = std::filesystem;

namespace vislint::store {

bool is_writable_dir(const std::string& dir) { return ::access(dir.c_str(), W_OK) == 0; }

WorkDirLock::WorkDirLock(const std::string& work_dir) {
    const std::string path = (fs::path(work_dir) / kLockName).string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0 && (errno == EROFS || errno == EACCES || errno == EPERM))
        throw Error("work dir " + work_dir + " is read-only (" + std::strerror(errno) +
                    "): results can be read from it but not written; scan into a writable work dir");
    if (fd_ < 0) throw Error("cannot create " + path + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        ::close(fd_);
        fd_ = -1;
        if (err == EWOULDBLOCK)
            throw Error("work dir " + work_dir + " is in use by another vislint scan (it holds " + path +
                        "); wait for that scan to finish or use another work dir");
        throw Error("cannot lock " + path + ": " + std::strerror(err));
    }
}

WorkDirLock::~WorkDirLock() {
    if (fd_ >= 0) ::close(fd_); // closing releases the flock
}

void remove_tmp_files(const std::string& work_dir) {
    const fs::path root(work_dir);
    for (const fs::path& dir : {root, root / "report", root / "report" / "thumbs"}) {
        std::error_code ec;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
            const fs::path& p = it->path();
            if (p.extension() == ".tmp" && it->is_regular_file(ec)) fs::remove(p, ec);
        }
    }
}

void remove_results(const std::string& work_dir) {
    const fs::path root(work_dir);
    const std::string db = kDbName;
    for (const std::string& name : {db, db + "-wal", db + "-shm", db + "-journal", std::string(kFeaturesName),
                                    std::string("index.faiss"), std::string("knn_graph.bin"),
                                    std::string("run.json"), std::string(kVerifiedName)}) {
        std::error_code ec;
        fs::remove(root / name, ec);
        if (ec) throw Error("cannot remove " + (root / name).string() + ": " + ec.message());
    }
}

namespace {

std::string run_warning(const std::string& work_dir, const std::string& state) {
    const std::string tail = ": its results may be partial or stale; re-run the scan to complete them";
    if (state == "cancelled") return "the last scan into " + work_dir + " was cancelled before it finished" + tail;
    if (state == "failed") return "the last scan into " + work_dir + " failed before it finished" + tail;
    return "the last scan into " + work_dir + " did not finish (killed, out of disk space, or still running)" + tail;
}

// What identifies a state of the database file (and its write-ahead log): size, mtime, inode.
std::string file_state(const std::string& db_path) {
    std::string state;
    for (const std::string& p : {db_path, db_path + "-wal"}) {
        struct stat st;
        if (::stat(p.c_str(), &st) == 0)
            state += "|" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
                     std::to_string(st.st_mtim.tv_nsec) + ":" + std::to_string(st.st_ino);
    }
    return state;
}

// The states verified in this process, by database path + state -> the warning to give.
std::mutex verified_mu;
std::map<std::string, std::string> verified;

// WORK/vislint.verified: the state of vislint.db that was last verified whole, so that a later
// process (`vislint similar`, a Python load) does not read every row again: at 10 M images that
// read is tens of seconds, against milliseconds for the query. Best effort: not written on a
// read-only work dir (which then verifies once per process).
fs::path marker_path(const std::string& work_dir) { return fs::path(work_dir) / kVerifiedName; }

void write_marker(const std::string& work_dir, const std::string& state) {
    const fs::path tmp = marker_path(work_dir).string() + ".tmp";
    std::error_code ec;
    {
        std::ofstream out(tmp, std::ios::trunc);
        if (!out) return;
        out << state << "\n";
        if (!out) return;
    }
    fs::rename(tmp, marker_path(work_dir), ec);
    if (ec) fs::remove(tmp, ec);
}

bool marker_matches(const std::string& work_dir, const std::string& state) {
    std::ifstream in(marker_path(work_dir));
    std::string line;
    return in && std::getline(in, line) && line == state;
}

} // namespace

bool verified_unchanged(const std::string& work_dir) {
    const std::string db_path = (fs::path(work_dir) / kDbName).string();
    const std::string state = file_state(db_path);
    {
        std::lock_guard<std::mutex> lock(verified_mu);
        auto it = verified.find(db_path + state);
        if (it != verified.end() && it->second.empty()) return true;
    }
    return marker_matches(work_dir, state);
}

void note_verified(const std::string& work_dir) {
    const std::string db_path = (fs::path(work_dir) / kDbName).string();
    const std::string state = file_state(db_path);
    write_marker(work_dir, state);
    std::lock_guard<std::mutex> lock(verified_mu);
    verified[db_path + state] = "";
}

std::unique_ptr<Db> open_results(const std::string& work_dir, std::string* warning) {
    const fs::path p = fs::path(work_dir) / kDbName;
    if (!fs::is_regular_file(p))
        throw Error("not a vislint work dir (no " + std::string(kDbName) + "): " + work_dir +
                    "; run `vislint scan INPUT -o " + work_dir + "` first");
    const std::string state = file_state(p.string()), key = p.string() + state;
    std::string w;
    bool known = false;
    {
        std::lock_guard<std::mutex> lock(verified_mu);
        auto it = verified.find(key);
        if (it != verified.end()) {
            known = true;
            w = it->second;
        }
    }
    if (!known && marker_matches(work_dir, state)) {
        known = true; // verified whole by an earlier process, unchanged since
        std::lock_guard<std::mutex> lock(verified_mu);
        verified[key] = "";
    }
    auto db = std::make_unique<Db>(p.string(), true, !known);
    const std::string schema = db->meta("schema_version");
    if (schema != schema_version())
        throw Error("work dir " + work_dir + " was written by another vislint version (database schema " +
                    (schema.empty() ? std::string("unknown") : schema) + ", this version reads " +
                    schema_version() + "): re-run the scan into it to bring it up to date (its images are "
                    "analysed again)");
    if (!known) {
        const std::string run = db->meta("run_state"), stored = db->meta("checksum");
        // A scan deletes the checksum when it starts and stores it in its last transaction, so
        // it is verified whatever run_state says (which damage could have changed too).
        if (!stored.empty() && !checksum_matches(*db, stored, int(std::thread::hardware_concurrency())))
            throw_damaged(p.string(), "its rows do not match the checksum the scan stored");
        if (run == "complete" && stored.empty()) throw_damaged(p.string(), "its checksum is missing");
        if (run.empty() && !stored.empty()) throw_damaged(p.string(), "its run state is missing");
        if (run != "complete" && !run.empty()) w = run_warning(work_dir, run);
        if (run == "complete") write_marker(work_dir, state);
        // Neither key: a work dir written before vislint kept them.
        std::lock_guard<std::mutex> lock(verified_mu);
        verified[key] = w;
    }
    if (warning) *warning = w;
    return db;
}

} // namespace vislint::store
