// Work dir housekeeping: the writer's lock, leftovers of interrupted writes, --rebuild.
#pragma once

#include <memory>
#include <string>

#include "store/db.h"

namespace vislint::store {

inline const char* kLockName = "vislint.lock";
inline const char* kVerifiedName = "vislint.verified";

// An exclusive flock on WORK_DIR/vislint.lock for as long as the object lives (the kernel drops
// it when the process dies, so a killed scan never leaves a stale lock). Throws vislint::Error
// when another process holds it ("... is in use by another vislint scan") or when the work dir
// is read-only. Readers do not lock.
class WorkDirLock {
public:
    explicit WorkDirLock(const std::string& work_dir);
    ~WorkDirLock();
    WorkDirLock(const WorkDirLock&) = delete;
    WorkDirLock& operator=(const WorkDirLock&) = delete;

private:
    int fd_ = -1;
};

// Removes *.tmp files an interrupted write left in the work dir and its report folders.
// REQUIRES: the caller holds the WorkDirLock.
void remove_tmp_files(const std::string& work_dir);

// Removes the database (and its -wal / -shm / -journal files), features.npy, index.faiss and
// run.json, so the next open starts from an empty work dir. REQUIRES: the WorkDirLock is held.
void remove_results(const std::string& work_dir);

// True when `dir` exists and this process may create files in it (false on a read-only mount).
bool is_writable_dir(const std::string& dir);

// Opens WORK_DIR/vislint.db for reading, verified: the file exists (else "not a vislint work
// dir"), passes quick_check, and after a complete scan matches its stored checksum (throws
// vislint::Error naming the file and the fix). `warning` (may be nullptr) receives "" when the
// last scan completed, else one line saying the results may be partial. The checksum is
// recomputed once per process per state of the file. Thread-safe.
std::unique_ptr<Db> open_results(const std::string& work_dir, std::string* warning = nullptr);

// Records that this process has just written WORK_DIR/vislint.db as a complete scan, with its
// checksum computed over those rows, so open_results() need not recompute it (the report after
// a scan: a full read of every table, ~1 s per million images), in this process and, through
// WORK_DIR/vislint.verified (the file's size, mtime and inode), in later ones.
void note_verified(const std::string& work_dir);
// True when WORK_DIR/vislint.db is in a state verified whole (by note_verified or open_results),
// unchanged since.
bool verified_unchanged(const std::string& work_dir);

} // namespace vislint::store
