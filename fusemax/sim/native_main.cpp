// native_main.cpp -- the Verilator C++ harness of fusemax.sim.native (no Python in the loop).
//
// Built with `verilator --cc --exe --build --prefix Vtop` around the simulation toplevel
// fusemax_sim (fusemax/sim/wrapper.py, docs/architecture.md section 7). It does what the cocotb
// bench tests/cocotb_benches/tb_attention.py does, cycle for cycle, and writes the same
// results JSON:
//
//   reset 3 cycles, one start pulse with sched_base, clock until done rises or the cycle limit,
//   2 more cycles (the wrapper dumps the outputs on done), read every counter via
//   csr_addr/csr_data, write {"timeout", "timeout_cycles", "done", "busy", "error", "csr",
//   "sim_wall_s", "cycles_run"}.
//
// Plusargs (all passed to the model too, so the wrapper sees +fusemax_image and friends):
//   +fusemax_results=PATH          where to write the results JSON (required)
//   +fusemax_sched_base=N          line address of the first instruction (default 0)
//   +fusemax_timeout_cycles=N      cycle limit after the start pulse (required)
//   +fusemax_csr_count=N           counters to read, CSR addresses 0..N-1 (default 19)
//
// Exit status: 0 done rose, 3 the cycle limit was reached (results written, "timeout": true),
// 2 bad arguments or the results file could not be written.

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

namespace {

constexpr int kHalfPeriod = 5;  // time units; the cocotb bench uses a 10 ns period

// Value of "+NAME=VALUE" or nullptr if absent. NAME must include the '='.
const char* plusarg(VerilatedContext* ctx, const char* name_eq) {
    const char* match = ctx->commandArgsPlusMatch(name_eq);
    if (!match || !*match) return nullptr;
    return match + 1 + std::strlen(name_eq);  // skip '+' and "NAME="
}

bool plusarg_u64(VerilatedContext* ctx, const char* name_eq, uint64_t* out) {
    const char* text = plusarg(ctx, name_eq);
    if (!text) return false;
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(text, &end, 0);
    if (errno || end == text || *end) {
        std::fprintf(stderr, "native_main: bad value in +%s%s\n", name_eq, text);
        std::exit(2);
    }
    *out = v;
    return true;
}

struct Harness {
    VerilatedContext* ctx;
    Vtop* top;

    void half(int clk) {
        top->clk = clk;
        top->eval();
        ctx->timeInc(kHalfPeriod);
    }
    void rising() { half(1); }
    void falling() { half(0); }
    void cycle() {
        rising();
        falling();
    }
};

}  // namespace

int main(int argc, char** argv) {
    const std::unique_ptr<VerilatedContext> ctx{new VerilatedContext};
    ctx->quiet(true);  // no end-of-run statistics on stdout
    ctx->commandArgs(argc, argv);

    // copy at once: the text plusarg() points to is overwritten by the next lookup
    const char* results_arg = plusarg(ctx.get(), "fusemax_results=");
    const std::string results{results_arg ? results_arg : ""};
    uint64_t timeout_cycles = 0;
    uint64_t sched_base = 0;
    uint64_t csr_count = 19;
    if (results.empty() || !plusarg_u64(ctx.get(), "fusemax_timeout_cycles=", &timeout_cycles)) {
        std::fprintf(stderr,
                     "usage: %s +fusemax_results=PATH +fusemax_timeout_cycles=N "
                     "[+fusemax_sched_base=N] [+fusemax_csr_count=N] [+fusemax_image=PATH ...]\n",
                     argv[0]);
        return 2;
    }
    plusarg_u64(ctx.get(), "fusemax_sched_base=", &sched_base);
    plusarg_u64(ctx.get(), "fusemax_csr_count=", &csr_count);

    const std::unique_ptr<Vtop> top{new Vtop{ctx.get(), "TOP"}};
    Harness h{ctx.get(), top.get()};

    // Reset, edge for edge as the cocotb bench (the memory model's back-pressure LFSR runs
    // free from time 0, so the cycle counts depend on it): the model is evaluated once with
    // clk low, then the clock starts high at time 0 (a rising edge); rst is held through the
    // rising edges at 0, 10, 20, 30 and released at the falling edge at 35; start is set at 45
    // (sampled at 50) and cleared at 55.
    top->clk = 0;
    top->rst = 1;
    top->start = 0;
    top->sched_base = sched_base;
    top->csr_addr = 0;
    top->eval();  // initial blocks: $readmemh, plusargs
    for (int i = 0; i < 4; ++i) h.cycle();
    top->rst = 0;
    h.cycle();
    // one start pulse, set and cleared on falling edges
    top->start = 1;
    h.cycle();
    top->start = 0;

    // run until done rises or the cycle limit
    const auto t0 = std::chrono::steady_clock::now();
    bool timeout = true;
    uint64_t cycles_run = 0;
    while (cycles_run < timeout_cycles && !ctx->gotFinish()) {
        h.rising();
        ++cycles_run;
        if (top->done) {
            timeout = false;
            h.falling();
            break;
        }
        h.falling();
    }
    const double sim_wall_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    // let the wrapper's dump (on done) happen, then read the counters (combinational)
    h.cycle();
    h.cycle();
    std::vector<uint64_t> csr;
    for (uint64_t addr = 0; addr < csr_count; ++addr) {
        top->csr_addr = addr;
        top->eval();
        csr.push_back(static_cast<uint64_t>(top->csr_data));
    }
    const int done = top->done;
    const int busy = top->busy;
    const int error = top->error;
    top->final();

    std::FILE* f = std::fopen(results.c_str(), "w");
    if (!f) {
        std::fprintf(stderr, "native_main: cannot write %s: %s\n", results.c_str(),
                     std::strerror(errno));
        return 2;
    }
    std::fprintf(f, "{\n  \"timeout\": %s,\n  \"timeout_cycles\": %" PRIu64 ",\n",
                 timeout ? "true" : "false", timeout_cycles);
    std::fprintf(f, "  \"done\": %d,\n  \"busy\": %d,\n  \"error\": %d,\n  \"csr\": [", done, busy,
                 error);
    for (size_t i = 0; i < csr.size(); ++i)
        std::fprintf(f, "%s%" PRIu64, i ? ", " : "", csr[i]);
    std::fprintf(f, "],\n  \"sim_wall_s\": %.9g,\n  \"cycles_run\": %" PRIu64 "\n}\n", sim_wall_s,
                 cycles_run);
    if (std::fclose(f) != 0) {
        std::fprintf(stderr, "native_main: cannot write %s\n", results.c_str());
        return 2;
    }
    if (timeout) {
        std::fprintf(stderr,
                     "native_main: done did not rise within %" PRIu64
                     " cycles (busy=%d, error=0x%02x)\n",
                     timeout_cycles, busy, error);
        return 3;
    }
    return 0;
}
