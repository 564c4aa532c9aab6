// ptx_emu.h: the PTX instructions rusca's kernels use (cuda/ptx.cuh), emulated from the PTX ISA's
// definitions: mma.sync m16n8k16 (bf16 in, fp32 accumulate), ldmatrix m8n8 (.x1/.x2/.x4, .trans)
// and cp.async (see emu.h). mma and ldmatrix are warp-wide: all 32 lanes rendezvous, as .aligned
// requires, and the last to arrive computes every lane's fragment.
#pragma once
#include <cstdint>

#include "cuda/emu/emu.h"

namespace rusca::emu {

// d = a * b + c for one warp; a, b, c, d in the fragment layouts of the PTX ISA ("Matrix Fragments
// for mma.m16n8k16 with floating point type"); bf16 pairs packed low element first.
void mma_m16n8k16_bf16_f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4],
                           Site site);
// ldmatrix.sync.aligned.m8n8.x{count}[.trans].shared.b16: lanes 8i..8i+7 give the row addresses of
// matrix i; r[i] of lane l receives matrix i's row l/4, columns 2(l%4), 2(l%4)+1 (.trans: transposed).
void ldmatrix(uint32_t* r, int count, bool trans, const void* row_addr, Site site);

}  // namespace rusca::emu
