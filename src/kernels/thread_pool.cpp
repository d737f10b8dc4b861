// Persistent thread pool (thread_pool.hpp) and the num_threads() / set_num_threads() controls.
//
// One job at a time: the submitting thread publishes the job, bumps a generation counter and wakes
// the workers; everyone, the submitter included, takes indices from an atomic counter until they
// run out; the submitter waits until every index is done and every worker that joined has left
// (not for workers still asleep: on a busy machine the caller may have done everything). A second
// thread that calls parallel_for while a job is running does its work inline instead of waiting
// for the pool.
#include "kernels/thread_pool.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "imgsim/error.hpp"
#include "imgsim/runtime/cpu.hpp"

namespace imgsim {
namespace {

std::atomic<int> g_threads{0};  // 0: not decided yet (IMGSIM_NUM_THREADS or hardware)

int default_threads() {
  if (const char* env = std::getenv("IMGSIM_NUM_THREADS")) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end == env || *end != '\0' || v < 1 || v > 4096)
      throw InvalidArgument(std::string("IMGSIM_NUM_THREADS='") + env +
                            "' is not a thread count (expected an integer from 1 to 4096)");
    return static_cast<int>(v);
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

}  // namespace

void set_num_threads(int n) {
  if (n < 1)
    throw InvalidArgument("set_num_threads: need at least 1 thread, got " + std::to_string(n));
  g_threads.store(n);
}

int num_threads() {
  int n = g_threads.load();
  if (n == 0) {
    int expected = 0;
    const int d = default_threads();
    // Keep a concurrent set_num_threads() if it won the race.
    n = g_threads.compare_exchange_strong(expected, d) ? d : expected;
  }
  return n;
}

namespace kernels {
namespace {

thread_local bool t_in_pool = false;

// One parallel_for call. Lives on the submitter's stack; the submitter returns only when every
// task is done and no worker is still inside (entered == 0), and it unpublishes the job first, so
// a worker that wakes up late never sees it.
struct Job {
  void (*fn)(void*, int64_t);
  void* ctx;
  int64_t n;
  std::atomic<int64_t> next{0};  // next index to hand out
  std::atomic<int64_t> done{0};  // indices finished
  int entered = 0;               // workers inside drain(); guarded by Pool::m_
  std::exception_ptr error;      // first exception; guarded by Pool::m_
};

class Pool {
 public:
  // Runs the job on up to `threads` threads (the caller included). Returns false, without
  // running anything, if another thread holds the pool.
  bool run(int threads, int64_t n, void (*fn)(void*, int64_t), void* ctx) {
    std::unique_lock<std::mutex> submit(submit_, std::try_to_lock);
    if (!submit.owns_lock()) return false;
    resize(threads - 1);
    Job job;
    job.fn = fn;
    job.ctx = ctx;
    job.n = n;
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = &job;
      ++generation_;
    }
    work_cv_.notify_all();
    drain(job);
    std::unique_lock<std::mutex> lk(m_);
    // Workers that have not woken up yet are not waited for: the caller may have done it all.
    done_cv_.wait(lk, [&] { return job.done.load() == n && job.entered == 0; });
    job_ = nullptr;
    if (job.error) {
      std::exception_ptr e = job.error;
      lk.unlock();
      std::rethrow_exception(e);
    }
    return true;
  }

 private:
  // Takes indices until there are none left; records the first exception.
  void drain(Job& job) {
    const bool was = t_in_pool;
    t_in_pool = true;
    for (;;) {
      const int64_t i = job.next.fetch_add(1, std::memory_order_relaxed);
      if (i >= job.n) break;
      try {
        job.fn(job.ctx, i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m_);
        if (!job.error) job.error = std::current_exception();
      }
      job.done.fetch_add(1, std::memory_order_acq_rel);
    }
    t_in_pool = was;
  }

  void worker_loop(uint64_t seen) {
    t_in_pool = true;
    for (;;) {
      Job* job = nullptr;
      {
        std::unique_lock<std::mutex> lk(m_);
        work_cv_.wait(lk, [&] { return (generation_ != seen && job_) || stop_; });
        if (stop_) return;
        seen = generation_;
        job = job_;
        ++job->entered;
      }
      drain(*job);
      std::lock_guard<std::mutex> lk(m_);
      --job->entered;
      done_cv_.notify_one();
    }
  }

  // Called with submit_ held and no job running.
  void resize(int workers) {
    if (static_cast<int>(workers_.size()) == workers) return;
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    for (int w = 0; w < workers; ++w)
      workers_.emplace_back([this, g = generation_] { worker_loop(g); });
  }

  std::mutex submit_;  // held by the thread whose job is running
  std::mutex m_;       // guards job_, generation_, stop_, Job::entered, Job::error
  std::condition_variable work_cv_, done_cv_;
  std::vector<std::thread> workers_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  Job* job_ = nullptr;
};

// Never destroyed: workers may still be parked at exit, and static destructors elsewhere may
// still call parallel_for.
Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

}  // namespace

bool in_parallel_region() {
  return t_in_pool;
}

void parallel_for_impl(int64_t n, void (*fn)(void* ctx, int64_t i), void* ctx) {
  if (n <= 0) return;
  const int threads = num_threads();
  if (n > 1 && threads > 1 && !t_in_pool) {
    if (pool().run(threads, n, fn, ctx)) return;
  }
  struct Flag {  // restores the flag on exit, also when fn throws
    bool was = t_in_pool;
    Flag() { t_in_pool = true; }
    ~Flag() { t_in_pool = was; }
  } flag;
  for (int64_t i = 0; i < n; ++i) fn(ctx, i);
}

}  // namespace kernels
}  // namespace imgsim
