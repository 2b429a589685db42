// A small persistent thread pool for the native addon: nthreads-1 workers plus the
// calling thread. A job opens a gate that workers join; workers spin briefly before
// sleeping on a condition variable, so back-to-back kernels (a training step issues
// hundreds) do not pay a futex wake-up each, and the caller never waits for a worker
// that has not joined by the time its own part is done. GENLAB_THREADS sets the size
// (default: hardware threads). Calls from a second JS thread (worker_threads) while a
// job runs execute serially instead of queueing.
#include "common.h"

#if !GL_WASM
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
#include <stdint.h>
#include <stdlib.h>

namespace gl {
namespace {

constexpr int MAX_THREADS = 64;

struct Pool {
  // gate: [job id : 32][closed : 1][joined : 31]. A worker joins the open job by
  // incrementing `joined` and takes the next thread index; the caller closes the gate
  // when its own part is done and runs the indices nobody took itself, so a worker
  // that wakes late (a sleeping core can take milliseconds to come back on a shared
  // machine) costs nothing: it finds the gate closed and goes back to waiting.
  static constexpr uint64_t CLOSED = 1ull << 31, JOINED = CLOSED - 1;
  std::mutex mu;
  std::condition_variable wake, done;
  std::atomic<uint64_t> gate{0};
  std::atomic<int> finished{0};
  std::atomic<bool> busy{false};
  TaskFn fn = nullptr;
  void* ctx = nullptr;
  int jobThreads = 1;
  uint32_t jobId = 0;
  int started = 0;  // workers running
  int size = 1;     // threads used, caller included

  static uint32_t idOf(uint64_t g) { return (uint32_t)(g >> 32); }

  // `last` is the job id at creation, so only later jobs are joined.
  void worker(uint32_t last) {
    for (;;) {
      // Spin ~1 ms (a pause is ~25 ns here) before sleeping: kernels usually come in
      // bursts, and a sleeping worker wakes too late for the next one (the caller then
      // does all of it). At ~0.12 ms, realnvp-2d's worker slept ~5 times a step and missed
      // ~13 jobs, ~4 of them 0.2-1 ms products; at ~1 ms, ~1 sleep and ~10 misses.
      for (int i = 0; i < 40000 && idOf(gate.load(std::memory_order_acquire)) == last; i++) pause();
      if (idOf(gate.load(std::memory_order_acquire)) == last) {
        std::unique_lock<std::mutex> lk(mu);
        wake.wait(lk, [&] { return idOf(gate.load(std::memory_order_acquire)) != last; });
      }
      uint64_t g = gate.load(std::memory_order_acquire);
      last = idOf(g);
      int tid = 0;
      while (!(g & CLOSED) && idOf(g) == last) {
        if (gate.compare_exchange_weak(g, g + 1, std::memory_order_seq_cst)) {
          tid = (int)(g & JOINED) + 1;
          break;
        }
      }
      if (tid == 0) continue;  // closed before we came, or a newer job is open: look again
      if (tid < jobThreads) fn(ctx, tid, jobThreads);
      finished.fetch_add(1, std::memory_order_seq_cst);
      const uint64_t now = gate.load(std::memory_order_seq_cst);
      if ((now & CLOSED) && (int)(now & JOINED) == finished.load(std::memory_order_seq_cst)) {
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
      ++started;
      const uint32_t id = idOf(gate.load(std::memory_order_acquire));
      std::thread([this, id] { worker(id); }).detach();
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
    {
      std::lock_guard<std::mutex> lk(mu);
      fn = f;
      ctx = c;
      jobThreads = nt;
      finished.store(0, std::memory_order_relaxed);
      gate.store((uint64_t)++jobId << 32, std::memory_order_seq_cst);
    }
    wake.notify_all();
    f(c, 0, nt);
    const int joined = (int)(gate.fetch_or(CLOSED, std::memory_order_seq_cst) & JOINED);
    for (int t = joined + 1; t < nt; t++) f(c, t, nt);
    for (int i = 0; i < 50000 && finished.load(std::memory_order_seq_cst) != joined; i++) pause();
    if (finished.load(std::memory_order_seq_cst) != joined) {
      std::unique_lock<std::mutex> lk(mu);
      done.wait(lk, [&] { return finished.load(std::memory_order_seq_cst) == joined; });
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
