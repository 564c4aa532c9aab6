// safetensors.h: read (memory-mapped) and write (atomically) Hugging Face safetensors files.
// Format: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
// optional "__metadata__" string map, then the raw tensor bytes. Every field of the header is
// validated on open; errors name the file and the tensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rusca {

enum class DType { F32, F16, BF16, I32, I64 };
const char* dtype_name(DType d);  // "F32", "BF16", ... as spelled in safetensors headers
size_t dtype_size(DType d);

struct TensorView {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const uint8_t* data = nullptr;  // points into the mapped file
    size_t nbytes = 0;
    size_t numel() const;
};

// A memory-mapped safetensors file; tensors stay valid while the object lives.
class SafeTensorsFile {
public:
    explicit SafeTensorsFile(const std::string& path);
    ~SafeTensorsFile();
    SafeTensorsFile(const SafeTensorsFile&) = delete;
    SafeTensorsFile& operator=(const SafeTensorsFile&) = delete;

    const std::string& path() const { return path_; }
    const std::vector<TensorView>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const TensorView* find(const std::string& name) const;  // nullptr if absent
    const TensorView& get(const std::string& name) const;   // throws, naming file and tensor
    // Copy tensor `name` into dst as Real (converting from f32/f16/bf16), after checking that its
    // shape equals `shape`; errors name the file, the tensor and both shapes.
    template <typename Real>
    void read(const std::string& name, const std::vector<int64_t>& shape, Real* dst) const;
    void read_i32(const std::string& name, const std::vector<int64_t>& shape, int32_t* dst) const;

private:
    std::string path_;
    void* map_ = nullptr;
    size_t map_size_ = 0;
    std::vector<TensorView> tensors_;
    std::map<std::string, std::string> metadata_;
};

// One tensor to write; `data` holds numel * dtype_size(dtype) bytes in that dtype.
struct TensorOut {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const void* data = nullptr;
};

// Writes to `path + ".tmp"`, fsyncs, then renames over `path`: a crash leaves the old file intact.
void write_safetensors(const std::string& path, const std::vector<TensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// fp32 <-> bf16 / f16 (round to nearest even), used when saving in a narrower dtype.
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t x);
uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t x);

}  // namespace rusca
