// pybind11 module vislint._core: converts arguments, releases the GIL for the scan, forwards
// progress to a Python callable (tqdm in vislint/__init__.py) and maps vislint::Error to
// vislint.VislintError. Everything else lives in the C++ core or in pure Python.
#include <cmath>
#include <csignal>
#include <limits>
#include <type_traits>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <pybind11/numpy.h>

#include "common/text.h"
#include "graph/evaluate.h"
#include "vislint/embed.h"
#include "vislint/issue.h"
#include "vislint/report.h"
#include "vislint/results.h"
#include "vislint/scan.h"

namespace py = pybind11;

namespace {

// A name (any bytes) as the str os.fsdecode() would make: bytes that are not UTF-8 become lone
// surrogates, so os.fsencode() gives the original bytes back. Names going into the core arrive
// as bytes (the Python layer calls os.fsencode), which the std::string caster takes as they are.
py::str fs_str(const std::string& s) {
    PyObject* o = PyUnicode_DecodeUTF8(s.data(), py::ssize_t(s.size()), "surrogateescape");
    if (!o) throw py::error_already_set();
    return py::reinterpret_steal<py::str>(o);
}

// Calls the Python progress callback with the GIL held; Ctrl-C (a pending KeyboardInterrupt)
// or a callback returning False cancels the scan.
class PyProgress : public vislint::Progress {
public:
    explicit PyProgress(py::object callback) : callback_(std::move(callback)) {}

    bool progress(const char* stage, uint64_t done, uint64_t total) override {
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() != 0) {
            interrupted_ = true;
            PyErr_Clear();
            return false;
        }
        if (callback_.is_none()) return true;
        try {
            py::object r = callback_(stage, done, total);
            return r.is_none() || r.cast<bool>();
        } catch (py::error_already_set& e) {
            if (e.matches(PyExc_KeyboardInterrupt)) interrupted_ = true;
            else error_ = std::make_unique<py::error_already_set>(std::move(e));
            return false;
        }
    }

    void log(const char* level, const char* message) override {
        py::gil_scoped_acquire gil;
        if (!logger_.is_none()) logger_(level, vislint::printable(message));
    }

    py::object logger_ = py::none();
    bool interrupted_ = false;
    std::unique_ptr<py::error_already_set> error_;

private:
    py::object callback_;
};

// The CLI spelling of a keyword ("max_pixels" -> "--max-pixels", "k" -> "-k"), so that a bad
// value gets the same message from Python as from the command line.
std::string flag_of(const char* key) {
    std::string k = key;
    if (k == "k") return "-k";
    for (char& c : k)
        if (c == '_') c = '-';
    return "--" + k;
}

std::string repr_of(py::handle v) { return py::repr(v).cast<std::string>(); }

// A real number given as a Python or NumPy float (or anything with __float__ but a string);
// false otherwise.
bool float_value(py::handle v, double* out) {
    if (PyBool_Check(v.ptr()) || PyLong_Check(v.ptr()) || PyIndex_Check(v.ptr()) ||
        py::isinstance<py::str>(v) || py::isinstance<py::bytes>(v) || !PyNumber_Check(v.ptr()))
        return false;
    PyObject* f = PyNumber_Float(v.ptr());
    if (!f) {
        PyErr_Clear();
        return false;
    }
    *out = PyFloat_AsDouble(f);
    Py_DECREF(f);
    return true;
}

// Converts one keyword value, raising vislint.VislintError (never a pybind11 cast error) for a
// value of the wrong kind. Whole numbers outside the C++ type's range are clamped to its end so
// that validate() rejects them with the option's allowed range.
template <typename T> T convert(py::handle v, const char* key) {
    const bool is_bool = PyBool_Check(v.ptr());
    if constexpr (std::is_same_v<T, bool>) {
        if (!is_bool) throw vislint::Error(flag_of(key) + " must be True or False (got " + repr_of(v) + ")");
        return v.ptr() == Py_True;
    } else if constexpr (std::is_integral_v<T>) {
        const std::string msg = flag_of(key) + " must be a whole number (got " + repr_of(v) + ")";
        if (is_bool) throw vislint::Error(msg);
        if (double d; float_value(v, &d)) { // 1e8 is a natural way to write a pixel count
            if (!std::isfinite(d) || d != std::floor(d)) throw vislint::Error(msg);
            if (d >= double(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
            if (d <= double(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
            return T(d);
        }
        if (!PyIndex_Check(v.ptr())) throw vislint::Error(msg); // int, numpy.int64, ...
        py::object as_int = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr()));
        if (!as_int) { // e.g. a numpy array
            PyErr_Clear();
            throw vislint::Error(msg);
        }
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(as_int.ptr(), &overflow);
        if (overflow > 0 || x > (long long)std::numeric_limits<T>::max()) return std::numeric_limits<T>::max();
        if (overflow < 0 || x < (long long)std::numeric_limits<T>::min()) return std::numeric_limits<T>::min();
        return T(x);
    } else if constexpr (std::is_same_v<T, double>) {
        if (double d; float_value(v, &d)) return d;
        if (is_bool || !PyIndex_Check(v.ptr()))
            throw vislint::Error(flag_of(key) + " must be a number (got " + repr_of(v) + ")");
        py::object as_int = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr()));
        if (!as_int) {
            PyErr_Clear();
            throw vislint::Error(flag_of(key) + " must be a number (got " + repr_of(v) + ")");
        }
        double d = PyLong_AsDouble(as_int.ptr()); // beyond double's range: OverflowError
        if (d == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            throw vislint::Error(flag_of(key) + " must be a finite number (got " + repr_of(v) + ")");
        }
        return d;
    } else if constexpr (std::is_same_v<T, std::string>) {
        // Names travel as bytes (os.fsencode by the Python layer); a str is encoded the same way,
        // so a surrogate-escaped name keeps its original bytes.
        if (py::isinstance<py::bytes>(v)) return std::string(PyBytes_AS_STRING(v.ptr()), size_t(PyBytes_GET_SIZE(v.ptr())));
        if (!py::isinstance<py::str>(v)) throw vislint::Error(flag_of(key) + " must be a string (got " + repr_of(v) + ")");
        py::object b = py::reinterpret_steal<py::object>(PyUnicode_EncodeFSDefault(v.ptr()));
        if (!b) throw py::error_already_set();
        return std::string(PyBytes_AS_STRING(b.ptr()), size_t(PyBytes_GET_SIZE(b.ptr())));
    } else { // std::vector<double>: a number or a list of numbers
        static_assert(std::is_same_v<T, std::vector<double>>);
        const std::string msg = flag_of(key) + " must be a number or a list of 1 or 3 numbers (got " + repr_of(v) + ")";
        if (double d; float_value(v, &d)) return {d};
        if (py::isinstance<py::str>(v) || py::isinstance<py::bytes>(v) || is_bool) throw vislint::Error(msg);
        if (!py::isinstance<py::iterable>(v)) {
            if (PyIndex_Check(v.ptr())) return {convert<double>(v, key)}; // int, numpy.int64
            throw vislint::Error(msg);
        }
        std::vector<double> out;
        for (py::handle item : v) { // lists, tuples, numpy arrays
            double d;
            if (float_value(item, &d)) out.push_back(d);
            else if (!PyBool_Check(item.ptr()) && PyIndex_Check(item.ptr())) out.push_back(convert<double>(item, key));
            else throw vislint::Error(msg);
        }
        return out;
    }
}

template <typename T> void take(py::dict& d, const char* key, T* out) {
    if (!d.contains(key)) return;
    *out = convert<T>(d[key], key);
    PyDict_DelItemString(d.ptr(), key);
}

// The model keyword arguments shared by scan() and embed_image().
void take_model_options(py::dict& d, vislint::ModelOptions* mo) {
    take(d, "model", &mo->model);
    take(d, "model_size", &mo->input_size);
    take(d, "model_mean", &mo->mean);
    take(d, "model_std", &mo->std);
    take(d, "model_output", &mo->output);
    take(d, "precision", &mo->precision);
}

// Runs a long core call with the GIL released. A cancellation caused by the progress callback
// resurfaces as what caused it: the callback's own exception, or KeyboardInterrupt for Ctrl-C.
template <typename F>
auto run_cancellable(PyProgress& cb, F&& f) {
    try {
        py::gil_scoped_release release;
        return f();
    } catch (const vislint::Cancelled&) {
        if (cb.error_) throw std::move(*cb.error_);
        if (cb.interrupted_) {
            PyErr_SetNone(PyExc_KeyboardInterrupt);
            throw py::error_already_set();
        }
        throw;
    }
}

py::dict to_dict(const vislint::ScanSummary& s) {
    py::dict d;
    d["images"] = s.images;
    d["analysed"] = s.analysed;
    d["reused"] = s.reused;
    d["removed"] = s.removed;
    d["skipped_files"] = s.skipped_files;
    d["labelled"] = s.labelled;
    d["missing_label_files"] = s.missing_label_files;
    d["skipped_boxes"] = s.skipped_boxes;
    d["issue_counts"] = s.issue_counts;
    d["timings"] = s.timings;
    py::list warnings;
    for (const auto& w : s.warnings) warnings.append(vislint::printable(w));
    d["warnings"] = warnings;
    d["db_path"] = fs_str(s.db_path);
    return d;
}

} // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "vislint C++ core";
    static py::exception<vislint::Error> error(m, "VislintError", PyExc_RuntimeError);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const vislint::Error& e) {
            error(vislint::printable(e.what()).c_str());
        }
    });
    m.def("version", &vislint::version);
    m.def("issue_types", &vislint::issue_types);

    m.def(
        "scan",
        [](std::vector<std::string> inputs, std::string work_dir, py::dict options,
           py::object progress, py::object logger) {
            vislint::ScanOptions o;
            o.inputs = std::move(inputs);
            o.work_dir = std::move(work_dir);
            py::dict opts = py::dict(options); // copy: consumed keys are removed
            vislint::Thresholds& t = o.thresholds;
            take_model_options(opts, &o.model);
            take(opts, "batch_size", &o.model.batch_size);
            take(opts, "k", &o.k);
            take(opts, "index_dim", &o.index_dim);
            take(opts, "embeddings", &o.embeddings);
            take(opts, "names", &o.names);
            take(opts, "near_duplicate_threshold", &t.near_duplicate);
            take(opts, "cluster_threshold", &t.cluster);
            take(opts, "outlier_z", &t.outlier_z);
            take(opts, "threads", &o.threads);
            take(opts, "max_pixels", &o.max_pixels);
            take(opts, "max_image_memory_mb", &o.max_image_memory_mb);
            take(opts, "rebuild", &o.rebuild);
            take(opts, "blurry_threshold", &t.blurry);
            take(opts, "dark_threshold", &t.dark);
            take(opts, "bright_threshold", &t.bright);
            take(opts, "low_information_threshold", &t.low_information);
            take(opts, "grayscale_threshold", &t.grayscale_colour_fraction);
            take(opts, "aspect_ratio_threshold", &t.odd_aspect_ratio);
            take(opts, "odd_size_ratio", &t.odd_size_ratio);
            take(opts, "min_side", &t.odd_size_min_side);
            take(opts, "hash_radius", &t.hash_radius);
            take(opts, "dhash_radius", &t.dhash_radius);
            take(opts, "small_copy_threshold", &t.small_copy);
            take(opts, "copy_candidate_threshold", &t.copy_candidate);
            take(opts, "label_issue_threshold", &t.label_issue);
            vislint::LabelOptions& lo = o.labels;
            take(opts, "labels", &lo.labels);
            take(opts, "coco", &lo.coco);
            take(opts, "yolo", &lo.yolo);
            take(opts, "objects", &lo.objects);
            take(opts, "min_box_side", &lo.min_box_side);
            take(opts, "box_margin", &lo.box_margin);
            if (opts.contains("splits")) {
                std::string splits;
                take(opts, "splits", &splits);
                if (splits != "auto" && splits != "none") throw vislint::Error("splits must be 'auto' or 'none'");
                lo.auto_splits = splits == "auto";
            }
            if (opts.contains("label_rows")) { // (path, label, split) tuples, from the Python layer
                for (auto row : opts["label_rows"]) {
                    auto t3 = row.cast<std::tuple<std::string, std::string, std::string>>();
                    lo.rows.push_back({std::get<0>(t3), std::get<1>(t3), std::get<2>(t3)});
                }
                PyDict_DelItemString(opts.ptr(), "label_rows");
            }
            if (!opts.empty()) {
                std::string names;
                for (auto item : opts) names += (names.empty() ? "" : ", ") + py::str(item.first).cast<std::string>();
                throw vislint::Error("unknown option(s): " + names);
            }
            PyProgress cb(progress);
            cb.logger_ = logger;
            return to_dict(run_cancellable(cb, [&] { return vislint::scan(o, &cb); }));
        },
        py::arg("inputs"), py::arg("work_dir"), py::arg("options") = py::dict(),
        py::arg("progress") = py::none(), py::arg("logger") = py::none(),
        "Scan inputs into work_dir. Releases the GIL; progress(stage, done, total) -> bool.");

    m.def("work_dir_warning", [](const std::string& work_dir) {
        std::string message;
        {
            py::gil_scoped_release release;
            message = vislint::work_dir_warning(work_dir);
        }
        return fs_str(message);
    }, py::arg("work_dir"),
    "Verify a work dir (raises VislintError when its database is damaged); return '' after a "
    "complete scan, else a warning that its results may be partial or stale.");
    auto hits_to_list = [](const std::vector<vislint::SimilarHit>& hits) {
        py::list out;
        for (const auto& h : hits) out.append(py::make_tuple(fs_str(h.path), h.score));
        return out;
    };
    m.def("similar_path", [hits_to_list](const std::string& work_dir, const std::string& image, py::object k_) {
        const int k = convert<int>(k_, "k");
        std::vector<vislint::SimilarHit> hits;
        {
            py::gil_scoped_release release;
            hits = vislint::similar(work_dir, image, k);
        }
        return hits_to_list(hits);
    }, py::arg("work_dir"), py::arg("image"), py::arg("k") = 10);
    m.def("similar_vector", [hits_to_list](const std::string& work_dir,
                                           py::array_t<float, py::array::c_style | py::array::forcecast> v, py::object k_) {
        const int k = convert<int>(k_, "k");
        if (v.ndim() != 1) throw vislint::Error("a feature vector must be 1-D");
        std::vector<vislint::SimilarHit> hits;
        {
            py::gil_scoped_release release;
            hits = vislint::similar_to_vector(work_dir, v.data(), int(v.shape(0)), k);
        }
        return hits_to_list(hits);
    }, py::arg("work_dir"), py::arg("vector"), py::arg("k") = 10);
    m.def("similar_pixels", [hits_to_list](const std::string& work_dir,
                                           py::array_t<uint8_t, py::array::c_style | py::array::forcecast> bgr, py::object k_) {
        const int k = convert<int>(k_, "k");
        if (bgr.ndim() != 3 || bgr.shape(2) != 3) throw vislint::Error("an image must be H x W x 3 uint8");
        std::vector<vislint::SimilarHit> hits;
        {
            py::gil_scoped_release release;
            hits = vislint::similar_to_pixels(work_dir, bgr.data(), int(bgr.shape(1)), int(bgr.shape(0)), k);
        }
        return hits_to_list(hits);
    }, py::arg("work_dir"), py::arg("bgr"), py::arg("k") = 10);

    using Rows = std::vector<std::tuple<std::string, std::string, std::string>>;
    auto scores_to_dict = [](const std::map<std::string, vislint::TypeScore>& scores) {
        py::dict out;
        for (const auto& [type, sc] : scores)
            out[py::str(type)] = py::make_tuple(sc.precision, sc.recall, sc.f1, sc.predicted, sc.truth, sc.matched);
        return out;
    };
    m.def("evaluate", [scores_to_dict](const std::string& work_dir, const Rows& rows, const std::string& base_dir) {
        std::vector<vislint::TruthRow> truth;
        for (const auto& [type, path, other] : rows) truth.push_back({type, path, other});
        std::map<std::string, vislint::TypeScore> scores;
        std::vector<std::string> warnings;
        {
            py::gil_scoped_release release;
            scores = vislint::evaluate(work_dir, truth, base_dir, &warnings);
        }
        py::list w;
        for (const auto& line : warnings) w.append(fs_str(line));
        return py::make_tuple(scores_to_dict(scores), w);
    }, py::arg("work_dir"), py::arg("rows"), py::arg("base_dir") = "",
    "Score the work dir's issue rows against (type, path, other_path) rows: {type: (precision, recall, "
    "f1, predicted, true, matched)}, warnings.");
    m.def("evaluate_csv", [scores_to_dict](const std::string& work_dir, const std::string& csv_path) {
        std::map<std::string, vislint::TypeScore> scores;
        std::vector<std::string> warnings;
        {
            py::gil_scoped_release release;
            scores = vislint::evaluate_csv(work_dir, csv_path, &warnings);
        }
        py::list w;
        for (const auto& line : warnings) w.append(fs_str(line));
        return py::make_tuple(scores_to_dict(scores), w);
    }, py::arg("work_dir"), py::arg("csv_path"),
    "evaluate() against a TRUTH.csv (read and checked as `vislint eval` does).");
    m.def("score_findings", [scores_to_dict](const Rows& predicted, const Rows& truth) {
        auto findings = [](const Rows& rows) {
            std::vector<vislint::graph::Finding> out;
            for (const auto& [type, a, b] : rows) out.push_back({type, a, b});
            return out;
        };
        return scores_to_dict(vislint::graph::score_findings(findings(predicted), findings(truth)));
    }, py::arg("predicted"), py::arg("truth"),
    "The scoring rules of evaluate() on two lists of (type, name, other_name) rows (any tool's findings).");

    // None = the core's default cap.
    auto report_options = [](py::object max_rows) {
        vislint::ReportOptions ro;
        if (!max_rows.is_none()) ro.max_rows_per_type = convert<int>(max_rows, "max_rows_per_type");
        vislint::check_report_options(ro);
        return ro;
    };
    m.attr("default_max_rows_per_type") = vislint::kDefaultMaxRowsPerType;
    m.def("check_report_options", [report_options](py::object max_rows) { report_options(max_rows); },
          py::arg("max_rows_per_type") = py::none(), "Raise VislintError when a report option is out of range.");
    m.def(
        "write_report",
        [report_options](const std::string& work_dir, py::object progress, py::object max_rows) {
            const vislint::ReportOptions ro = report_options(max_rows);
            PyProgress cb(progress);
            return fs_str(run_cancellable(cb, [&] { return vislint::write_report(work_dir, ro, &cb); }));
        },
        py::arg("work_dir"), py::arg("progress") = py::none(), py::arg("max_rows_per_type") = py::none(),
        "Write WORK_DIR/report/index.html (+ thumbs/); returns its path. Releases the GIL.");

    m.def("embed_image", [](const std::string& path, py::dict options) {
        vislint::ModelOptions mo;
        py::dict opts = py::dict(options);
        take_model_options(opts, &mo);
        if (!opts.empty()) throw vislint::Error("unknown option(s) for embed: " + py::str(opts).cast<std::string>());
        vislint::Embedding e;
        {
            py::gil_scoped_release release;
            e = vislint::embed_image(path, mo);
        }
        auto to_array = [](const std::vector<float>& v) {
            py::array_t<float> a(std::vector<py::ssize_t>{py::ssize_t(v.size())});
            std::copy(v.begin(), v.end(), a.mutable_data());
            return a;
        };
        return py::make_tuple(to_array(e.features), to_array(e.logits));
    }, py::arg("path"), py::arg("options") = py::dict());
}
