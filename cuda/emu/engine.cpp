// engine.cpp: the SIMT emulator's execution engine. A launch runs its blocks one after another on
// the calling OS thread; within a block every CUDA thread is a fiber (fiber.h). The scheduler keeps a
// queue of ready threads and resumes each until it finishes or waits:
//   - at __syncthreads: released when every thread of the block that has not exited is waiting at
//     one barrier (threads at different call sites: a divergent barrier, reported as a fault);
//   - at a warp collective (shuffles, votes, __syncwarp, mma.sync, ldmatrix): the last lane of the
//     mask to arrive computes the result for all of them; a lane of the mask waiting at another
//     collective, or already exited, is a fault naming both call sites.
// When nothing is ready and threads still wait, that is a deadlock: the fault lists which threads
// wait where (file:line). The order in which ready threads run is the schedule (forward, reverse,
// seeded random): a kernel whose result depends on it has a race.
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>

#include "cuda/emu/device_builtins.h"
#include "cuda/emu/engine.h"
#include "cuda/emu/sanitizer.h"

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace rusca::emu {
namespace bctx = boost::context::detail;

namespace {

// The warp collectives a warp has open: lanes have arrived, not all of the mask yet. Usually one;
// more when disjoint groups of lanes (half-warps) each run their own.
struct Warp {
    struct Open {
        const char* op;
        Site site;
        unsigned mask, arrived;
    };
    std::vector<Open> open;
    unsigned exited = 0;  // lanes that have finished the kernel
    unsigned exists = 0;  // lanes the block has (the last warp may be partial)
};

struct Block {
    std::vector<Thread> threads;
    std::vector<Warp> warps;
    int n = 0, done = 0, at_barrier = 0;
    std::deque<int> ready;
    std::exception_ptr fault;
    std::function<void()>* body = nullptr;
};

struct Scheduler {
    Block block;
    FiberStacks stacks;
    fcontext_t main = nullptr;  // the scheduler's own context while a fiber runs
    Thread* current = nullptr;
    unsigned char* smem = nullptr;
    // Sanitizer state (sanitizer.h): TSan fibers (the OS thread's, one per fiber slot), the
    // scheduler's ASan fake stack and stack bounds, and the launch's ordering tokens.
    void* tsan_main = nullptr;
    std::vector<void*> tsan_fibers;
    void* asan_fake = nullptr;
    const void* main_bottom = nullptr;
    size_t main_size = 0;
    char launch_token = 0, done_token = 0;
    int abandoned = 0;  // fiber stacks left mid-kernel by a fault (ASan must forget their frames)
};
thread_local Scheduler* t_sched = nullptr;

Scheduler& sched() {
    if (!t_sched) {
        t_sched = new Scheduler;  // one per OS thread that launches kernels, kept for its lifetime
        t_sched->tsan_main = san::current_fiber();
        t_sched->smem = static_cast<unsigned char*>(aligned_alloc(128, kOptinSmemBytes));
    }
    return *t_sched;
}

// ---- schedule order ----
std::mutex g_schedule_mutex;
Schedule g_schedule = Schedule::Forward;
std::mt19937_64 g_rng(1);
bool g_schedule_from_env = false;

void schedule_from_env() {
    std::lock_guard<std::mutex> lock(g_schedule_mutex);
    if (g_schedule_from_env) return;
    g_schedule_from_env = true;
    const char* e = getenv("RUSCA_EMU_SCHEDULE");
    if (!e || !*e) return;
    std::string s(e);
    if (s == "forward") g_schedule = Schedule::Forward;
    else if (s == "reverse") g_schedule = Schedule::Reverse;
    else if (s.rfind("random", 0) == 0) {
        g_schedule = Schedule::Random;
        g_rng.seed(s.size() > 7 ? std::stoull(s.substr(7)) : 1);
    } else
        throw Fault("RUSCA_EMU_SCHEDULE=" + s + ": expected forward, reverse or random[:seed]");
}

// Put `ids` in schedule order.
void order(std::vector<int>& ids) {
    if (g_schedule == Schedule::Reverse) std::reverse(ids.begin(), ids.end());
    if (g_schedule == Schedule::Random) {
        std::lock_guard<std::mutex> lock(g_schedule_mutex);
        std::shuffle(ids.begin(), ids.end(), g_rng);
    }
}

// Queue threads that can run again. Forward is breadth-first: they wait behind every thread
// already queued, so warps advance nearly in step, as on a GPU. Reverse is depth-first: they run
// next, so one warp runs as far ahead of the others as the barriers allow (a missing barrier
// between warps then shows); random picks either way each time.
void make_ready(Block& b, std::vector<int> ids) {
    order(ids);
    for (int i : ids) b.threads[i].state = Thread::Ready;
    bool depth_first = g_schedule == Schedule::Reverse;
    if (g_schedule == Schedule::Random) {
        std::lock_guard<std::mutex> lock(g_schedule_mutex);
        depth_first = g_rng() & 1;
    }
    if (depth_first) b.ready.insert(b.ready.begin(), ids.begin(), ids.end());
    else b.ready.insert(b.ready.end(), ids.begin(), ids.end());
}

std::string where(const Thread& t) {
    std::ostringstream s;
    s << t.op << " at " << (t.site.file ? t.site.file : "?") << ":" << t.site.line;
    return s.str();
}

std::string thread_name(const Thread& t) {
    std::ostringstream s;
    s << "thread (" << t.idx.x << "," << t.idx.y << "," << t.idx.z << ")";
    return s.str();
}

bool same_site(const Site& a, const Site& b) {
    return a.line == b.line && (a.file == b.file || (a.file && b.file && std::strcmp(a.file, b.file) == 0));
}

// "threads 0-31 wait at __syncthreads at f:l; threads 32-63 ..." for the threads in state `s`.
std::string waiting_report(const Block& b) {
    std::ostringstream r;
    int i = 0;
    while (i < b.n) {
        const Thread& t = b.threads[i];
        if (t.state == Thread::Done || t.state == Thread::Ready) {
            i++;
            continue;
        }
        int j = i + 1;
        while (j < b.n && b.threads[j].state == t.state && b.threads[j].op == t.op &&
               same_site(b.threads[j].site, t.site) && b.threads[j].mask == t.mask)
            j++;
        r << "\n  threads " << i << "-" << j - 1 << " (linear ids) wait at " << where(t);
        if (t.state == Thread::AtWarp) r << " (mask 0x" << std::hex << t.mask << std::dec << ")";
        i = j;
    }
    return r.str();
}

void fiber_main(bctx::transfer_t t) {
    Scheduler& s = *t_sched;
    Thread* me;
    {
        const san::EngineAccesses engine_side;
        s.main = t.fctx;
        san::finish_switch(nullptr, &s.main_bottom, &s.main_size);
        me = static_cast<Thread*>(t.data);
    }
    san::acquire(&s.launch_token);  // the host's writes before the launch
    try {
        (*s.block.body)();
        land_copies(*me, -1);  // copies never waited for still land (as on a GPU, eventually)
    } catch (...) {
        const san::EngineAccesses engine_side;
        s.block.fault = std::current_exception();
    }
    const san::EngineAccesses engine_side;
    san::release(&s.done_token);  // this thread's writes before the host's next reads
    me->state = Thread::Done;
    san::start_switch(nullptr, s.main_bottom, s.main_size);  // nullptr: this stack is finished
    san::switch_to(s.tsan_main);
    bctx::jump_fcontext(s.main, nullptr);  // never resumed again
}

// Switch from the running fiber back to the scheduler; returns when resumed.
void yield() {
    Scheduler& s = *t_sched;
    void* fake = nullptr;  // ASan's fake stack of this fiber while it is switched out
    san::start_switch(&fake, s.main_bottom, s.main_size);
    san::switch_to(s.tsan_main);
    bctx::transfer_t r = bctx::jump_fcontext(s.main, nullptr);
    s.main = r.fctx;
    san::finish_switch(fake, &s.main_bottom, &s.main_size);
}

void resume(Scheduler& s, Thread& t) {
    const san::EngineAccesses engine_side;
    threadIdx = t.idx;
    s.current = &t;
    san::start_switch(&s.asan_fake, s.stacks.bottom(t.linear), FiberStacks::kStackBytes);
    san::switch_to(s.tsan_fibers[t.linear]);
    bctx::transfer_t r = bctx::jump_fcontext(t.fiber, &t);
    san::finish_switch(s.asan_fake, nullptr, nullptr);
    t.fiber = r.fctx;
    s.current = nullptr;
}

// Release the barrier when every thread that has not exited waits at it.
void check_barrier(Block& b) {
    if (b.at_barrier == 0 || b.at_barrier + b.done < b.n) return;
    const Thread* first = nullptr;
    std::vector<int> ids;
    for (Thread& t : b.threads) {
        if (t.state != Thread::AtBarrier) continue;
        if (!first) first = &t;
        if (!same_site(t.site, first->site))
            throw Fault("divergent __syncthreads: the threads of the block wait at different barriers:" +
                        waiting_report(b));
        ids.push_back(t.linear);
    }
    b.at_barrier = 0;
    make_ready(b, std::move(ids));
}

// A lane that exits while lanes of its warp wait for it at a collective: they can never complete.
void check_exit_against_warp(Block& b, const Thread& t) {
    const int lane = t.linear % 32, warp0 = t.linear - lane;
    for (int j = warp0; j < std::min(warp0 + 32, b.n); j++) {
        const Thread& o = b.threads[j];
        if (o.state == Thread::AtWarp && (o.mask >> lane & 1u))
            throw Fault(thread_name(t) + " (lane " + std::to_string(lane) + ") exited, but " + thread_name(o) +
                        " waits for it at " + where(o) + " (mask names the lane)");
    }
}

void run_block(Scheduler& s, dim3 block) {
    Block& b = s.block;
    b.n = int(block.x * block.y * block.z);
    b.threads.resize(b.n);
    b.done = b.at_barrier = 0;
    b.ready.clear();
    b.fault = nullptr;
    for (; s.abandoned > 0; s.abandoned--) san::unpoison(s.stacks.bottom(s.abandoned - 1), FiberStacks::kStackBytes);
    b.warps.assign((b.n + 31) / 32, Warp{});
    for (int w = 0; w < int(b.warps.size()); w++) {
        const int lanes = std::min(32, b.n - 32 * w);
        b.warps[w].exists = lanes == 32 ? ~0u : (1u << lanes) - 1;
    }
    std::vector<int> ids(b.n);
    for (int i = 0; i < b.n; i++) {
        Thread& t = b.threads[i];
        t = Thread{};
        t.linear = i;
        t.idx = uint3{unsigned(i % block.x), unsigned(i / block.x % block.y), unsigned(i / (block.x * block.y))};
        t.fiber = make_fiber(s.stacks.bottom(i), fiber_main);
        if (int(s.tsan_fibers.size()) <= i) s.tsan_fibers.push_back(san::create_fiber());
        ids[i] = i;
    }
    make_ready(b, std::move(ids));
    while (b.done < b.n) {
        if (b.ready.empty()) throw Fault("deadlock: no thread can proceed:" + waiting_report(b));
        Thread& t = b.threads[b.ready.front()];
        b.ready.pop_front();
        resume(s, t);
        if (b.fault) std::rethrow_exception(b.fault);
        if (t.state == Thread::Done) {
            b.done++;
            b.warps[t.linear / 32].exited |= 1u << (t.linear % 32);
            check_exit_against_warp(b, t);
        } else if (t.state == Thread::AtBarrier) {
            b.at_barrier++;
        }
        check_barrier(b);
    }
}

std::string dim_str(dim3 d) {
    return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

void run_grid(dim3 grid, dim3 block, size_t smem, const char* file, int line, std::function<void()>& body) {
    Scheduler& s = sched();
    if (s.current) throw Fault("kernel launch from inside an emulated kernel");
    std::vector<int> order_ids(size_t(grid.x) * grid.y * grid.z);
    for (size_t i = 0; i < order_ids.size(); i++) order_ids[i] = int(i);
    order(order_ids);
    {
        const san::EngineAccesses engine_side;
        gridDim = grid, blockDim = block;
    }
    s.block.body = &body;
    for (int id : order_ids) {
        {
            const san::EngineAccesses engine_side;  // the fibers read these without a sync
            blockIdx = uint3{unsigned(id % grid.x), unsigned(id / grid.x % grid.y), unsigned(id / (grid.x * grid.y))};
        }
        std::memset(s.smem, 0xFF, smem);  // dynamic shared memory starts as poison (NaN)
        san::release(&s.launch_token);
        try {
            run_block(s, block);
            san::acquire(&s.done_token);
        } catch (const std::exception& e) {
            s.abandoned = s.block.n;
            throw Fault(std::string("emulated kernel launched at ") + file + ":" + std::to_string(line) + ", block " +
                        dim_str(dim3(blockIdx.x, blockIdx.y, blockIdx.z)) + ": " + e.what());
        }
    }
}

std::mutex g_attr_mutex;
std::map<const void*, int> g_max_dynamic_smem;

}  // namespace

[[noreturn]] void fault(const std::string& msg) {
    const san::EngineAccesses engine_side;
    Scheduler* s = t_sched;
    std::string who = s && s->current ? thread_name(*s->current) + ": " : "";
    throw Fault(who + msg);
}

bool in_kernel() {
    const san::EngineAccesses engine_side;
    return t_sched && t_sched->current;
}

Thread& current_thread() {
    const san::EngineAccesses engine_side;
    if (!in_kernel()) throw Fault("a device function was called outside an emulated kernel");
    return *t_sched->current;
}

unsigned char* dynamic_smem() {
    const san::EngineAccesses engine_side;
    current_thread();
    return t_sched->smem;
}

void set_schedule(Schedule sch, uint64_t seed) {
    schedule_from_env();
    std::lock_guard<std::mutex> lock(g_schedule_mutex);
    g_schedule = sch;
    g_rng.seed(seed);
}

Schedule schedule() {
    schedule_from_env();
    return g_schedule;
}

void set_max_dynamic_smem(const void* func, int bytes) {
    std::lock_guard<std::mutex> lock(g_attr_mutex);
    g_max_dynamic_smem[func] = bytes;
}

int max_dynamic_smem(const void* func) {
    std::lock_guard<std::mutex> lock(g_attr_mutex);
    auto it = g_max_dynamic_smem.find(func);
    return it == g_max_dynamic_smem.end() ? kDefaultSmemBytes : it->second;
}

cudaError_t launch_kernel(const void* func, dim3 grid, dim3 block, size_t smem, cudaStream_t stream, const char* file,
                          int line, std::function<void()> body) {
    schedule_from_env();
    const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (threads == 0 || threads > kMaxThreadsPerBlock || block.x > 1024 || block.y > 1024 || block.z > 64 ||
        grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
        return set_last_error(cudaErrorInvalidConfiguration);
    if (smem > size_t(max_dynamic_smem(func))) return set_last_error(cudaErrorInvalidValue);
    enqueue(stream, [=, body = std::move(body)]() mutable { run_grid(grid, block, smem, file, line, body); });
    return cudaSuccess;
}

void syncthreads(Site site) {
    const san::EngineAccesses engine_side;
    Thread& me = current_thread();
    me.state = Thread::AtBarrier;
    me.op = "__syncthreads";
    me.site = site;
    san::release(&t_sched->block);
    yield();
    san::acquire(&t_sched->block);
}

void warp_rendezvous(const char* op, unsigned mask, const void* in, void* out, WarpCombine combine, const void* ctx,
                     Site site) {
    const san::EngineAccesses engine_side;
    Thread& me = current_thread();
    Block& b = t_sched->block;
    Warp& w = b.warps[me.linear / 32];
    const int lane = me.linear % 32, warp0 = me.linear - lane;
    auto at = [&] { return std::string(op) + " at " + site.file + ":" + std::to_string(site.line); };
    auto hex = [](unsigned m) {
        std::ostringstream h;
        h << "0x" << std::hex << m;
        return h.str();
    };
    if (!(mask >> lane & 1u))
        fault(at() + ": mask " + hex(mask) + " does not include the calling lane " + std::to_string(lane));
    if (mask & ~w.exists)
        fault(at() + ": the mask " + hex(mask) + " names lanes that do not exist (the block has " +
              std::to_string(b.n) + " threads)");
    if (mask & w.exited)
        fault(at() + ": lane " + std::to_string(__builtin_ctz(mask & w.exited)) + " of the mask " + hex(mask) +
              " has already exited");
    me.state = Thread::AtWarp, me.op = op, me.site = site, me.mask = mask;
    me.in = in, me.out = out, me.combine = combine, me.combine_ctx = ctx;
    // Join the open collective of these lanes, or open one; a different collective that shares
    // lanes with ours can never complete alongside it.
    size_t k = 0;
    for (; k < w.open.size(); k++) {
        Warp::Open& o = w.open[k];
        if (!(o.mask & mask)) continue;
        if (o.op != op || !same_site(o.site, site) || o.mask != mask) {
            const int other = __builtin_ctz(o.arrived);
            fault("warp collective with lanes that disagree: lane " + std::to_string(lane) + " is at " + at() +
                  " with mask " + hex(mask) + ", lane " + std::to_string(other) + " is at " + o.op + " at " +
                  o.site.file + ":" + std::to_string(o.site.line) + " with mask " + hex(o.mask));
        }
        break;
    }
    if (k == w.open.size()) w.open.push_back(Warp::Open{op, site, mask, 0});
    w.open[k].arrived |= 1u << lane;
    if (w.open[k].arrived != mask) {
        san::release(&w);
        yield();  // the last lane to arrive computes our result and makes us ready
        san::acquire(&w);
        return;
    }
    san::acquire(&w);
    w.open.erase(w.open.begin() + k);
    const void* ins[32] = {};
    void* outs[32] = {};
    std::vector<int> others;
    for (int j = 0; j < 32; j++) {
        if (!(mask >> j & 1u)) continue;
        Thread& o = b.threads[warp0 + j];
        ins[j] = o.in, outs[j] = o.out;
        if (j != lane) others.push_back(warp0 + j);
    }
    combine(mask, ins, outs, ctx);
    san::release(&w);
    me.state = Thread::Ready;
    make_ready(b, std::move(others));
}

int lane_id() { return current_thread().linear % 32; }

unsigned live_lanes_mask() {
    const san::EngineAccesses engine_side;
    Thread& me = current_thread();
    Block& b = t_sched->block;
    const int warp0 = me.linear - me.linear % 32;
    unsigned m = 0;
    for (int j = 0; j < 32 && warp0 + j < b.n; j++)
        if (b.threads[warp0 + j].state != Thread::Done) m |= 1u << j;
    return m;
}

// ---- warp collectives' combine functions ----
void shfl_combine(unsigned mask, const void* const in[32], void* const out[32], const void*) {
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1u)) continue;
        const ShflArgs& a = static_cast<const ShflIn*>(in[l])->args;  // this lane's own arguments
        if (a.width < 1 || a.width > 32 || (a.width & (a.width - 1)))
            fault("warp shuffle width " + std::to_string(a.width) + " is not a power of two in [1, 32]");
        const int base = l & ~(a.width - 1), pos = l - base;
        int src = l;
        switch (a.kind) {
        case ShflArgs::Idx: src = base + (a.arg & (a.width - 1)); break;
        case ShflArgs::Up: src = pos >= a.arg ? l - a.arg : l; break;
        case ShflArgs::Down: src = pos + a.arg < a.width ? l + a.arg : l; break;
        case ShflArgs::Xor: src = (l ^ a.arg) < base + a.width ? l ^ a.arg : l; break;
        }
        if (!(mask >> src & 1u))
            fault("warp shuffle: lane " + std::to_string(l) + " reads lane " + std::to_string(src) +
                  ", which is not in the mask (its value is undefined on a GPU)");
        std::memcpy(out[l], static_cast<const ShflIn*>(in[src])->value, a.bytes);
    }
}

void vote_combine(unsigned mask, const void* const in[32], void* const out[32], const void*) {
    unsigned ballot = 0;
    for (int l = 0; l < 32; l++)
        if ((mask >> l & 1u) && *static_cast<const int*>(in[l])) ballot |= 1u << l;
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1u) *static_cast<unsigned*>(out[l]) = ballot;
}

}  // namespace rusca::emu
