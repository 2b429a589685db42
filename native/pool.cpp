// A small persistent thread pool for the native addon: nthreads-1 workers plus the
// calling thread. A job wakes the workers through a generation counter; workers spin
// briefly before sleeping on a condition variable, so back-to-back kernels (a training
// step issues hundreds) do not pay a futex wake-up each. GENLAB_THREADS sets the size
// (default: hardware threads). Calls from a second JS thread (worker_threads) while a
// job runs execute serially instead of queueing.
#include "common.h"

#if !GL_WASM
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
#include <stdlib.h>

namespace gl {
namespace {

constexpr int MAX_THREADS = 64;

struct Pool {
  std::mutex mu;
  std::condition_variable wake, done;
  std::atomic<unsigned> gen{0};
  std::atomic<int> pending{0};
  std::atomic<bool> busy{false};
  TaskFn fn = nullptr;
  void* ctx = nullptr;
  int jobThreads = 1;
  int started = 0;  // workers running
  int size = 1;     // threads used, caller included

  // `seen` is the generation at creation, so a job posted before the thread runs is not missed.
  void worker(int tid, unsigned seen) {
    for (;;) {
      // Spin briefly before sleeping: kernels usually come in bursts.
      for (int i = 0; i < 5000 && gen.load(std::memory_order_acquire) == seen; i++) pause();
      if (gen.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lk(mu);
        wake.wait(lk, [&] { return gen.load(std::memory_order_acquire) != seen; });
      }
      seen = gen.load(std::memory_order_acquire);
      if (tid < jobThreads) fn(ctx, tid, jobThreads);
      if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mu);
        done.notify_one();
      }
    }
  }

  static void pause() {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }

  void ensureWorkers(int n) {
    while (started < n - 1) {
      const int tid = ++started;
      const unsigned g = gen.load(std::memory_order_acquire);
      std::thread([this, tid, g] { worker(tid, g); }).detach();
    }
  }

  void run(int want, TaskFn f, void* c) {
    int nt = want < size ? want : size;
    bool expected = false;
    if (nt <= 1 || !busy.compare_exchange_strong(expected, true)) {
      // Serial: one thread, or another JS thread is using the pool right now.
      for (int t = 0; t < (nt < 1 ? 1 : nt); t++) f(c, t, nt < 1 ? 1 : nt);
      return;
    }
    ensureWorkers(size);
    const int workers = started;
    {
      std::lock_guard<std::mutex> lk(mu);
      fn = f;
      ctx = c;
      jobThreads = nt;
      pending.store(workers, std::memory_order_release);
      gen.fetch_add(1, std::memory_order_acq_rel);
    }
    wake.notify_all();
    f(c, 0, nt);
    for (int i = 0; i < 50000 && pending.load(std::memory_order_acquire) != 0; i++) pause();
    if (pending.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lk(mu);
      done.wait(lk, [&] { return pending.load(std::memory_order_acquire) == 0; });
    }
    busy.store(false, std::memory_order_release);
  }
};

Pool& pool() {
  // Leaked on purpose: detached workers outlive static destruction at exit.
  static Pool* p = [] {
    Pool* q = new Pool();
    int n = (int)std::thread::hardware_concurrency();
    if (const char* env = getenv("GENLAB_THREADS")) {
      const int e = atoi(env);
      if (e > 0) n = e;
    }
    q->size = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
    return q;
  }();
  return *p;
}

}  // namespace

void parallel(int want, TaskFn fn, void* ctx) { pool().run(want, fn, ctx); }
int numThreads() { return pool().size; }
void setNumThreads(int n) { pool().size = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n; }

}  // namespace gl

#else

namespace gl {
void parallel(int want, TaskFn fn, void* ctx) {
  (void)want;
  fn(ctx, 0, 1);
}
int numThreads() { return 1; }
void setNumThreads(int) {}
}  // namespace gl

#endif
