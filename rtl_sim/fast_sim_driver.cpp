// qrtl fast simulation driver (rtl_sim/fast_sim.py builds it with Verilator).
//
// Streams packed input vectors into a generated top module (clk, rst, in_valid, in_data,
// out_valid, out_data; optionally in_ready) and collects the out_valid outputs in order.
//
//   sim IN.bin OUT.bin II CYCLE_LIMIT TAIL_CYCLES [CFG.txt]
//
// IN.bin:  "QRSI", u32 version=1, u32 n_vectors, u32 words_per_vector, then n*words u32
//          (little-endian; word 0 holds bus bits 31..0, as Verilator's VlWide). Version 2
//          (streaming designs, one input beat per vector) adds u32 n_outputs after words_per_vector:
//          the output beats to wait for. With QRTL_OUT_READY, out_ready is held high.
// OUT.bin: "QRSO", u32 version=1, u32 n_outputs, u32 words_per_output, u64 cycles,
//          u32 extra_outputs, u32 status (0 ok, 1 cycle limit), then n_outputs*words u32.
// A vector is offered every II clocks (in_valid high for one clock); with QRTL_IN_READY
// the driver holds it until in_ready is high at a rising edge. The run stops when
// n_vectors outputs have come out (then TAIL_CYCLES idle clocks count surplus outputs)
// or after CYCLE_LIMIT clocks (status 1: the design hangs). With QRTL_CFG (reconfigurable
// weights) CFG.txt holds the weight bitstream as '0'/'1' characters in shift order; it is
// shifted in through cfg_en/cfg_sdi and committed with cfg_commit before the first vector
// (as rtl_sim.tb_network.load_config does). Exit status: 0 ok,
// 2 bad arguments or files, 3 cycle limit reached (OUT.bin is still written).
#include "Vtop.h"
#include "verilated.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

template <typename T>
struct Words {
    static constexpr size_t n = (sizeof(T) + 3) / 4;
};
template <std::size_t N>
struct Words<VlWide<N>> {
    static constexpr size_t n = N;
};

static inline void put(CData& p, const uint32_t* w) { p = static_cast<CData>(w[0]); }
static inline void put(SData& p, const uint32_t* w) { p = static_cast<SData>(w[0]); }
static inline void put(IData& p, const uint32_t* w) { p = w[0]; }
static inline void put(QData& p, const uint32_t* w) { p = static_cast<QData>(w[0]) | (static_cast<QData>(w[1]) << 32); }
template <std::size_t N>
static inline void put(VlWide<N>& p, const uint32_t* w) {
    for (size_t i = 0; i < N; ++i) p[i] = w[i];
}
static inline void get(const CData& p, uint32_t* w) { w[0] = p; }
static inline void get(const SData& p, uint32_t* w) { w[0] = p; }
static inline void get(const IData& p, uint32_t* w) { w[0] = p; }
static inline void get(const QData& p, uint32_t* w) {
    w[0] = static_cast<uint32_t>(p);
    w[1] = static_cast<uint32_t>(p >> 32);
}
template <std::size_t N>
static inline void get(const VlWide<N>& p, uint32_t* w) {
    for (size_t i = 0; i < N; ++i) w[i] = p[i];
}

static int fail(const char* msg, const char* path) {
    std::fprintf(stderr, "qrtl fast_sim: %s: %s\n", path, msg);
    return 2;
}

int main(int argc, char** argv) {
    if (argc != 6 && argc != 7) {
        std::fprintf(stderr, "usage: %s IN.bin OUT.bin II CYCLE_LIMIT TAIL_CYCLES [CFG.txt]\n", argv[0]);
        return 2;
    }
    const unsigned long ii = std::strtoul(argv[3], nullptr, 10);
    const unsigned long long limit = std::strtoull(argv[4], nullptr, 10);
    const unsigned long tail = std::strtoul(argv[5], nullptr, 10);
    if (ii < 1) return fail("II must be at least 1", argv[3]);

    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vtop>(ctx.get(), "top");
    constexpr size_t IW = Words<std::remove_reference_t<decltype(top->in_data)>>::n;
    constexpr size_t OW = Words<std::remove_reference_t<decltype(top->out_data)>>::n;

    std::FILE* f = std::fopen(argv[1], "rb");
    if (!f) return fail("cannot open", argv[1]);
    uint32_t head[4];
    if (std::fread(head, 4, 4, f) != 4 || std::memcmp(head, "QRSI", 4) != 0 || (head[1] != 1 && head[1] != 2)) {
        std::fclose(f);
        return fail("not a qrtl input file", argv[1]);
    }
    const size_t n = head[2];
    // version 2 (streaming designs): one more u32, the number of outputs (beats) expected
    uint32_t n_expect = head[2];
    if (head[1] == 2 && std::fread(&n_expect, 4, 1, f) != 1) {
        std::fclose(f);
        return fail("truncated", argv[1]);
    }
    if (head[3] != IW) {
        std::fclose(f);
        return fail("words per vector differ from the in_data port", argv[1]);
    }
    std::vector<uint32_t> in(n * IW + 1);
    if (std::fread(in.data(), 4, n * IW, f) != n * IW) {
        std::fclose(f);
        return fail("truncated", argv[1]);
    }
    std::fclose(f);
    std::vector<uint32_t> out(static_cast<size_t>(n_expect) * OW + 1);

    // reset: three rising edges with rst high, inputs idle
    top->clk = 0;
    top->rst = 1;
    top->in_valid = 0;
#ifdef QRTL_OUT_READY
    top->out_ready = 1;  // the harness reads every output beat at once
#endif
    std::vector<uint32_t> zero(IW + 1, 0);
    put(top->in_data, zero.data());
    top->eval();
    for (int k = 0; k < 3; ++k) {
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
    }
    top->rst = 0;
#ifdef QRTL_CFG
    top->cfg_en = 0;
    top->cfg_sdi = 0;
    top->cfg_commit = 0;
    if (argc == 7) {
        std::FILE* c = std::fopen(argv[6], "rb");
        if (!c) return fail("cannot open", argv[6]);
        int ch;
        while ((ch = std::fgetc(c)) != EOF) {
            if (ch != '0' && ch != '1') continue;
            top->cfg_en = 1;
            top->cfg_sdi = ch == '1';
            top->eval();
            top->clk = 1;
            top->eval();
            top->clk = 0;
            top->eval();
        }
        std::fclose(c);
        top->cfg_en = 0;
        top->cfg_sdi = 0;
        top->cfg_commit = 1;
        top->eval();
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->cfg_commit = 0;
        top->eval();
    }
#else
    if (argc == 7) return fail("this design has no cfg port", argv[6]);
#endif

    size_t sent = 0, got = 0;
    unsigned long wait = 0;  // clocks until the next vector may be offered (II)
    unsigned long long cycle = 0;
    uint32_t extra = 0, status = 0;
    unsigned long idle = 0;
    while (true) {
        if (got >= n_expect) {
            if (idle >= tail) break;
            ++idle;
        }
        if (cycle >= limit) {
            status = 1;
            break;
        }
        // falling edge: drive the inputs
        top->clk = 0;
        const bool offer = sent < n && wait == 0;
        top->in_valid = offer;
        if (offer) put(top->in_data, &in[sent * IW]);
        top->eval();
#ifdef QRTL_IN_READY
        const bool accept = offer && top->in_ready;
#else
        const bool accept = offer;
#endif
        // rising edge
        top->clk = 1;
        top->eval();
        ++cycle;
        if (accept) {
            ++sent;
            wait = ii - 1;
        } else if (wait) {
            --wait;
        }
        if (top->out_valid) {
            if (got < n_expect)
                get(top->out_data, &out[got * OW]);
            else
                ++extra;
            ++got;
        }
    }
    top->final();

    std::FILE* g = std::fopen(argv[2], "wb");
    if (!g) return fail("cannot write", argv[2]);
    const uint32_t n_out = static_cast<uint32_t>(got < n_expect ? got : n_expect);
    const uint32_t h2[4] = {0x4f535251u /* "QRSO" */, 1u, n_out, static_cast<uint32_t>(OW)};
    const uint32_t h3[2] = {extra, status};
    bool ok = std::fwrite(h2, 4, 4, g) == 4 && std::fwrite(&cycle, 8, 1, g) == 1 && std::fwrite(h3, 4, 2, g) == 2 &&
              std::fwrite(out.data(), 4, n_out * OW, g) == n_out * OW;
    ok = (std::fclose(g) == 0) && ok;
    if (!ok) return fail("cannot write", argv[2]);
    return status ? 3 : 0;
}
