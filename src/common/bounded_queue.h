#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>

namespace vislint {

// A blocking multi-producer / multi-consumer queue with a fixed capacity, so that a fast stage
// can never run ahead of a slow one by more than `capacity` items (memory stays flat).
// close() wakes everyone: push() then returns false and pop() drains what is left, then
// returns nullopt. Thread-safe.
template <typename T> class BoundedQueue {
public:
    explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}

    bool push(T item) {
        std::unique_lock<std::mutex> lock(mu_);
        not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
        if (closed_) return false;
        items_.push_back(std::move(item));
        not_empty_.notify_one();
        return true;
    }

    std::optional<T> pop() {
        std::unique_lock<std::mutex> lock(mu_);
        not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
        if (items_.empty()) return std::nullopt;
        T item = std::move(items_.front());
        items_.pop_front();
        not_full_.notify_one();
        return item;
    }

    // Like pop() but gives up after `ms` milliseconds (returns nullopt; check closed()).
    std::optional<T> pop_for(int ms) {
        std::unique_lock<std::mutex> lock(mu_);
        not_empty_.wait_for(lock, std::chrono::milliseconds(ms),
                            [&] { return closed_ || !items_.empty(); });
        if (items_.empty()) return std::nullopt;
        T item = std::move(items_.front());
        items_.pop_front();
        not_full_.notify_one();
        return item;
    }

    void close() {
        std::lock_guard<std::mutex> lock(mu_);
        closed_ = true;
        not_empty_.notify_all();
        not_full_.notify_all();
    }

    bool closed_and_empty() {
        std::lock_guard<std::mutex> lock(mu_);
        return closed_ && items_.empty();
    }

private:
    const size_t capacity_;
    std::mutex mu_;
    std::condition_variable not_empty_, not_full_;
    std::deque<T> items_;
    bool closed_ = false;
};

} // namespace vislint
