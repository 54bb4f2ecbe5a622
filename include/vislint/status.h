// Errors in two tiers.
//
// A failure that concerns one image (corrupt JPEG, zero-byte file, ...) is a value: an
// ImageStatus on that image's record, later a `broken` issue row. A scan of a million images
// never stops because of one bad file.
//
// A failure that ends the run (bad option, missing input root, unwritable work dir) is thrown as
// vislint::Error with a message a user can act on. Cancellation (the progress callback returned
// false) is thrown as vislint::Cancelled after everything done so far has been saved.
#pragma once

#include <stdexcept>
#include <string>

namespace vislint {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

class Cancelled : public Error {
public:
    explicit Cancelled(const std::string& message) : Error(message) {}
};

// Why an image could not be analysed. The name (see status_code_name) is the first word of
// the `detail` of its `broken` issue row, e.g. "truncated: premature end of JPEG data".
enum class StatusCode {
    kOk = 0,
    kEmpty,       // zero-byte file
    kTruncated,   // data ends before the image does
    kCorrupt,     // data is damaged or the decoder rejected it
    kUnsupported, // not a format vislint decodes (JPEG, PNG, BMP, TIFF, WebP, GIF, PNM)
    kUnreadable,  // the file could not be opened or read (permissions, dangling link, I/O error)
    kTooLarge,    // width x height or the decode's memory exceeds its limit (decompression-bomb guard)
    kNotRegularFile, // a FIFO, socket, device or other non-regular file: never opened for reading
};

const char* status_code_name(StatusCode code);

struct ImageStatus {
    StatusCode code = StatusCode::kOk;
    std::string message; // human-readable reason; empty when ok

    bool ok() const { return code == StatusCode::kOk; }
    // "<code name>: <message>", the text stored in a broken row's detail.
    std::string to_string() const;
    static ImageStatus make(StatusCode code, std::string message) {
        return ImageStatus{code, std::move(message)};
    }
};

} // namespace vislint
