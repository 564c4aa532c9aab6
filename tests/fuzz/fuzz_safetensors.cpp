// fuzz_safetensors.cpp: a safetensors file (header and data) through the real reader (mmap,
// header validation) and every dtype conversion (to float, double and int32).
#include <vector>

#include "host/safetensors.h"
#include "tests/fuzz/fuzz_target.h"

RUSCA_FUZZ_TARGET(safetensors) {
    const std::string path = rusca::fuzz::scratch_file("fuzz.safetensors", data, size);
    rusca::fuzz::expect_clean(path, [&] {
        rusca::SafeTensorsFile f(path);
        for (const rusca::TensorView& t : f.tensors()) {
            const bool floating = t.dtype == rusca::DType::F32 || t.dtype == rusca::DType::BF16 ||
                                  t.dtype == rusca::DType::F16;
            // The header check bounds nbytes by the file size, so these copies are small.
            if (floating) {
                std::vector<float> f32(t.numel());
                f.read(t.name, t.shape, f32.data());
                std::vector<double> f64(t.numel());
                f.read(t.name, t.shape, f64.data());
            } else {
                std::vector<int32_t> i32(t.numel());
                f.read_i32(t.name, t.shape, i32.data());
            }
        }
    });
}
