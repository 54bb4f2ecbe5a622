// Scan step 2: analyse each image on worker threads and write its row.
//
// Threads: `threads` workers pull file indices from an atomic counter, analyse one image each
// (read, hash, decode, stats) and push the small result record into a bounded queue. The calling
// thread drains the queue, writes rows in batched transactions and reports progress, so pixels
// never outlive their worker and memory stays flat whatever the dataset size.
#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include <opencv2/core.hpp>

#include "common/bounded_queue.h"
#include "common/fault.h"
#include "pipeline/analyze.h"
#include "pipeline/scan_steps.h"

namespace vislint::pipeline {

void analyse_all(store::Db& db, std::vector<store::ImageRecord>& todo, AnalyseContext& ctx,
                 Reporter& rep, bool* cancelled) {
    const size_t total = todo.size();
    if (total == 0) return;
    pipeline::AnalyzeOptions aopt;
    aopt.max_pixels = ctx.max_pixels;
    aopt.max_bytes = ctx.max_image_bytes;
    aopt.working_side = kWorkingSide;
    aopt.model_size = ctx.model ? ctx.model->input_size : 0;
    aopt.variant_hashes = ctx.model || ctx.given;
    aopt.box_margin = ctx.box_margin;

    struct Job {
        size_t index;
        cv::Mat input;
    };
    const int threads = ctx.threads;
    const int n_embed = ctx.model ? ctx.embedder->streams() : 0;
    const int dim = n_embed ? ctx.embedder->dim() : 0;

    // Units of work: one file, or all crops of one file (consecutive in `todo`, decoded once).
    std::vector<size_t> unit_start;
    for (size_t i = 0; i < total; ++i)
        if (i == 0 || todo[i].source.empty() || todo[i].source != todo[i - 1].source) unit_start.push_back(i);
    unit_start.push_back(total);

    BoundedQueue<size_t> done(size_t(threads) * 64);
    BoundedQueue<Job> jobs(size_t(std::max(1, n_embed)) * size_t(ctx.batch_size) * 2);
    std::vector<std::vector<float>> embedding(ctx.model ? total : 0);
    const std::vector<float> embedding_none;
    std::atomic<size_t> next{0};
    std::atomic<bool> stop{false};
    std::exception_ptr worker_error;
    std::mutex error_mu;
    auto guarded = [&](auto&& body) {
        try {
            body();
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mu);
            if (!worker_error) worker_error = std::current_exception();
            stop = true;
        }
    };
    auto decoder = [&] {
        guarded([&] {
            auto push = [&](size_t i, cv::Mat&& input) {
                return (ctx.model && !input.empty()) ? jobs.push({i, std::move(input)}) : done.push(i);
            };
            std::vector<cv::Mat> inputs;
            for (;;) {
                if (stop.load()) break;
                size_t u = next.fetch_add(1);
                if (u + 1 >= unit_start.size()) break;
                const size_t b = unit_start[u], e = unit_start[u + 1];
                bool pushed = true;
                if (todo[b].source.empty()) {
                    cv::Mat input;
                    pipeline::analyze_file(aopt, &todo[b], ctx.model ? &input : nullptr);
                    pushed = push(b, std::move(input));
                } else {
                    pipeline::analyze_boxes(aopt, &todo[b], e - b, ctx.model ? &inputs : nullptr);
                    for (size_t i = b; i < e && pushed; ++i)
                        pushed = push(i, ctx.model ? std::move(inputs[i - b]) : cv::Mat());
                }
                if (!pushed) break;
            }
        });
    };
    auto inferrer = [&](int w) {
        guarded([&] {
            std::vector<Job> batch;
            std::vector<cv::Mat> inputs;
            std::vector<float> out;
            for (;;) {
                batch.clear();
                std::optional<Job> first = jobs.pop();
                if (!first) break;
                batch.push_back(std::move(*first));
                while (int(batch.size()) < ctx.batch_size) {
                    std::optional<Job> more = jobs.pop_for(2);
                    if (!more) break;
                    batch.push_back(std::move(*more));
                }
                inputs.clear();
                for (auto& j : batch) inputs.push_back(j.input);
                ctx.embedder->embed(inputs, &out);
                for (size_t b = 0; b < batch.size(); ++b) {
                    embedding[batch[b].index].assign(out.begin() + long(b * dim), out.begin() + long((b + 1) * dim));
                    if (!done.push(batch[b].index)) return;
                }
            }
        });
    };

    const int saved_cv_threads = cv::getNumThreads();
    if (n_embed) cv::setNumThreads(1);
    std::vector<std::thread> decoders, inferrers;
    for (int t = 0; t < threads; ++t) decoders.emplace_back(decoder);
    for (int t = 0; t < n_embed; ++t) inferrers.emplace_back(inferrer, t);
    std::thread closer([&] {
        for (auto& th : decoders) th.join();
        jobs.close();
        for (auto& th : inferrers) th.join();
        done.close();
    });
    // Whatever happens on this thread, the workers are stopped and joined before returning.
    struct Joiner {
        std::atomic<bool>& stop;
        BoundedQueue<Job>& jobs;
        BoundedQueue<size_t>& done;
        std::thread& closer;
        int cv_threads;
        ~Joiner() {
            stop = true;
            jobs.close();
            done.close();
            if (closer.joinable()) closer.join();
            cv::setNumThreads(cv_threads);
        }
    } joiner{stop, jobs, done, closer, saved_cv_threads};

    std::vector<float> given_row(ctx.given ? size_t(ctx.given->dim()) : 0);
    store::Stmt upsert(db.handle(), store::image_upsert_sql());
    store::SmallThumbWriter thumbs(db);
    // The rows of a transaction say has_embedding = 1 only once their vectors are on disk.
    auto commit = [&] {
        if (ctx.features) ctx.features->sync();
        fault_point("commit");
        db.exec("COMMIT");
    };
    db.exec("BEGIN");
    auto last_commit = Clock::now();
    const int commit_every = fault_commit_every();
    size_t written = 0;
    for (;;) {
        std::optional<size_t> i = done.pop_for(100);
        if (i) {
            store::ImageRecord& r = todo[*i];
            if (ctx.features) {
                // An all-zero row is the embedder's "no usable output" (zeros, NaN or inf): such
                // an image keeps its other checks but stays out of the index (see derive_issues).
                const std::vector<float>* pick = embedding.empty() ? &embedding_none : &embedding[*i];
                if (ctx.given) // precomputed vectors: the image's row when it decoded
                    pick = r.status.ok() && ctx.given->get(r.path, given_row.data()) ? &given_row : &embedding_none;
                const std::vector<float>& e = *pick;
                if (std::any_of(e.begin(), e.end(), [](float v) { return v != 0; })) {
                    ctx.features->write_row(r.id, e.data());
                    r.has_embedding = true;
                } else {
                    ctx.features->zero_row(r.id);
                }
                fault_point("features");
            }
            store::bind_image(upsert, r);
            upsert.run();
            thumbs.write(r);
            fault_point("analyse");
            r = store::ImageRecord{}; // drop the record: memory stays flat
            if (!embedding.empty()) std::vector<float>().swap(embedding[*i]);
            ++written;
        } else if (done.closed_and_empty()) {
            break;
        }
        if (Clock::now() - last_commit > std::chrono::seconds(1) ||
            (i && commit_every > 0 && written % size_t(commit_every) == 0)) {
            commit();
            db.exec("BEGIN");
            last_commit = Clock::now();
        }
        if (!stop.load() && !rep.report("analyse", written, total, written == total)) {
            stop = true;
            *cancelled = true;
            // Workers finish the image in hand; the records they push are still written.
        }
    }
    closer.join();
    commit();
    if (worker_error) std::rethrow_exception(worker_error);
}

} // namespace vislint::pipeline
