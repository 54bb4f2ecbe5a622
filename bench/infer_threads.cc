// How OpenVINO should spend `--threads` inference threads while the decode workers are busy:
// N infer requests of one thread each (streams), or one request with N threads. The decode
// workers (`threads` of them, as in a scan) loop over the files the whole time, so both modes
// compete with decoding exactly as in a scan whose decoders keep up. Prints one line per mode:
// inference img/s and the decoders' img/s meanwhile, side by side.
//
//   infer_threads --list FILES.txt [--threads 2] [--n 800] [--batch 16] [--precision auto]
//                 [--model-size 160] [--json OUT]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "embed/embedder.h"
#include "pipeline/analyze.h"
#include "store/image_record.h"

using Clock = std::chrono::steady_clock;
using namespace vislint;

namespace {

struct Result {
    std::string mode;
    int streams = 0, threads_per_stream = 0;
    double infer_ips = 0, decode_ips = 0;
};

Result measure(const embed::ModelSpec& spec, const std::vector<std::string>& files,
               const std::vector<cv::Mat>& inputs, int threads, int streams, int n, int batch) {
    embed::Embedder e(spec, threads, streams);
    std::vector<cv::Mat> one(inputs.begin(), inputs.begin() + batch);
    std::vector<float> out;
    for (int s = 0; s < streams; ++s) e.embed(one, &out); // warm-up

    std::atomic<bool> stop{false};
    std::atomic<long> decoded{0};
    pipeline::AnalyzeOptions aopt;
    aopt.model_size = spec.input_size;
    std::vector<std::thread> decoders;
    for (int t = 0; t < threads; ++t)
        decoders.emplace_back([&, t] {
            for (size_t i = size_t(t); !stop.load(); i = (i + size_t(threads)) % files.size()) {
                store::ImageRecord r;
                r.path = files[i];
                cv::Mat input;
                pipeline::analyze_file(aopt, &r, &input);
                ++decoded;
            }
        });
    std::this_thread::sleep_for(std::chrono::milliseconds(300)); // decoders up to speed
    const long decoded0 = decoded.load();
    std::atomic<int> next{0};
    auto t0 = Clock::now();
    std::vector<std::thread> workers;
    for (int s = 0; s < streams; ++s)
        workers.emplace_back([&] {
            std::vector<cv::Mat> b;
            std::vector<float> o;
            for (int first; (first = next.fetch_add(batch)) < n;) {
                b.clear();
                for (int i = first; i < std::min(n, first + batch); ++i) b.push_back(inputs[size_t(i) % inputs.size()]);
                e.embed(b, &o);
            }
        });
    for (auto& w : workers) w.join();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const long decoded1 = decoded.load();
    stop = true;
    for (auto& d : decoders) d.join();
    Result r;
    r.mode = streams == 1 ? "1 request x " + std::to_string(threads) + " threads"
                          : std::to_string(streams) + " requests x " + std::to_string(threads / streams) + " thread";
    r.streams = streams;
    r.threads_per_stream = threads / streams;
    r.infer_ips = n / secs;
    r.decode_ips = double(decoded1 - decoded0) / secs;
    return r;
}

} // namespace

int main(int argc, char** argv) {
    std::string list, precision = "auto", json_out;
    int threads = 2, n = 800, batch = 16, model_size = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--list") list = argv[i + 1];
        else if (a == "--threads") threads = std::stoi(argv[i + 1]);
        else if (a == "--n") n = std::stoi(argv[i + 1]);
        else if (a == "--batch") batch = std::stoi(argv[i + 1]);
        else if (a == "--precision") precision = argv[i + 1];
        else if (a == "--model-size") model_size = std::stoi(argv[i + 1]);
        else if (a == "--json") json_out = argv[i + 1];
        else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
    }
    std::vector<std::string> files;
    std::ifstream in(list);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) files.push_back(line);
    if (files.size() < size_t(batch)) { std::fprintf(stderr, "need at least %d files in --list %s\n", batch, list.c_str()); return 2; }
    cv::setNumThreads(1);
    ModelOptions mo;
    mo.precision = precision;
    mo.input_size = model_size;
    const embed::ModelSpec spec = embed::resolve_model(mo);
    pipeline::AnalyzeOptions aopt;
    aopt.model_size = spec.input_size;
    std::vector<cv::Mat> inputs;
    for (size_t i = 0; i < files.size() && inputs.size() < 256; ++i) {
        store::ImageRecord r;
        r.path = files[i];
        cv::Mat input;
        pipeline::analyze_file(aopt, &r, &input);
        if (!input.empty()) inputs.push_back(input);
    }
    std::string flags;
    for (const auto& f : embed::cpu_flags()) flags += (flags.empty() ? "" : " ") + f;
    std::printf("%s, %s precision, %d px, batch %d, %d decode workers busy; CPU flags: %s\n",
                embed::runtime_version().c_str(), spec.precision.c_str(), spec.input_size, batch, threads,
                flags.c_str());
    std::printf("%-26s %12s %12s\n", "mode", "infer img/s", "decode img/s");
    nlohmann::json j = {{"runtime", embed::runtime_version()}, {"precision", spec.precision},
                        {"input_size", spec.input_size}, {"batch", batch}, {"threads", threads},
                        {"cpu_flags", embed::cpu_flags()}, {"modes", nlohmann::json::array()}};
    // Interleaved repeats: a noisy shared machine hits both modes alike.
    std::vector<Result> best;
    for (int rep = 0; rep < 2; ++rep)
        for (int streams : {threads, 1}) {
            Result r = measure(spec, files, inputs, threads, streams, n, batch);
            auto it = std::find_if(best.begin(), best.end(), [&](const Result& b) { return b.streams == r.streams; });
            if (it == best.end()) best.push_back(r);
            else if (r.infer_ips > it->infer_ips) *it = r;
            if (threads == 1) break;
        }
    for (const auto& r : best) {
        std::printf("%-26s %12.1f %12.1f\n", r.mode.c_str(), r.infer_ips, r.decode_ips);
        j["modes"].push_back({{"mode", r.mode}, {"streams", r.streams}, {"threads_per_stream", r.threads_per_stream},
                              {"infer_img_per_s", r.infer_ips}, {"decode_img_per_s", r.decode_ips}});
    }
    if (!json_out.empty()) std::ofstream(json_out) << j.dump(2) << "\n";
    return 0;
}
