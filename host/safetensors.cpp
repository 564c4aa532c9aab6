// safetensors.cpp: the Hugging Face safetensors format. Reading maps the file and validates the
// whole header up front (so later reads can trust offsets); writing streams the header and tensor
// bytes into a temp file that is renamed into place. Also the fp32 <-> bf16/f16 conversions.
#include "safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <type_traits>

#include "error.h"
#include "fileio.h"

namespace rusca {
using json = nlohmann::json;

// A header larger than this is corruption, not a model: real headers are at most a few MB.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

// ---------------------------------------------------------------------------------------------
// dtypes and conversions

const char* dtype_name(DType d) {
    switch (d) {
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
        case DType::I32: return "I32";
        case DType::I64: return "I64";
    }
    return "?";
}

size_t dtype_size(DType d) {
    switch (d) {
        case DType::F16:
        case DType::BF16: return 2;
        case DType::F32:
        case DType::I32: return 4;
        case DType::I64: return 8;
    }
    return 0;
}

static uint32_t float_bits(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    return u;
}

static float bits_float(uint32_t u) {
    float x;
    std::memcpy(&x, &u, 4);
    return x;
}

uint16_t f32_to_bf16(float x) {
    uint32_t u = float_bits(x);
    // Rounding a NaN could carry into the exponent and make it Inf; keep it a (quiet) NaN instead.
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);  // round to nearest, ties to even; overflow correctly gives Inf
    return uint16_t(u >> 16);
}

float bf16_to_f32(uint16_t x) { return bits_float(uint32_t(x) << 16); }

uint16_t f32_to_f16(float x) {
    uint32_t u = float_bits(x);
    const uint16_t sign = uint16_t((u >> 16) & 0x8000);
    u &= 0x7fffffffu;
    if (u >= 0x7f800000u)  // Inf stays Inf; NaN keeps its top payload bits and is made quiet
        return sign | (u == 0x7f800000u ? 0x7c00 : 0x7e00 | ((u >> 13) & 0x3ff));
    if (u >= 0x477ff000u) return sign | 0x7c00;  // >= 65520 rounds (ties to even) past 65504: Inf
    if (u < 0x38800000u) {
        // Result is subnormal or zero. Adding 0.5f makes the FPU round x to a multiple of 2^-24
        // (the f16 subnormal step) with ties to even; the low mantissa bits are then the answer.
        const uint32_t magic = 126u << 23;  // 0.5f
        return sign | uint16_t(float_bits(bits_float(u) + bits_float(magic)) - magic);
    }
    // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to even;
    // a carry out of the mantissa correctly bumps the exponent.
    u += 0xfffu + ((u >> 13) & 1);
    return sign | uint16_t((u - (112u << 23)) >> 13);
}

float f16_to_f32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in f32
        float v = float(mant) * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
}

size_t TensorView::numel() const {
    size_t n = 1;
    for (int64_t d : shape) n *= size_t(d);
    return n;
}

// ---------------------------------------------------------------------------------------------
// header parsing

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

std::string tensor_ctx(const std::string& path, const std::string& name) {
    return path + ": tensor \"" + name + "\": ";
}

bool parse_dtype(const std::string& s, DType* out) {
    for (DType d : {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I64})
        if (s == dtype_name(d)) {
            *out = d;
            return true;
        }
    return false;
}

// A JSON non-negative integer that fits in int64 (shapes and offsets).
bool get_count(const json& v, uint64_t* out) {
    if (!v.is_number_integer()) return false;
    if (v.is_number_unsigned()) *out = v.get<uint64_t>();
    else if (v.get<int64_t>() >= 0) *out = uint64_t(v.get<int64_t>());
    else return false;
    return *out <= uint64_t(INT64_MAX);
}

std::vector<int64_t> parse_shape(const json& j, const std::string& ctx) {
    check(j.contains("shape") && j["shape"].is_array(), ctx + "\"shape\" must be a list of integers");
    std::vector<int64_t> shape;
    for (const json& d : j["shape"]) {
        uint64_t n;
        check(get_count(d, &n), ctx + "\"shape\" must be a list of non-negative integers");
        shape.push_back(int64_t(n));
    }
    return shape;
}

TensorView parse_tensor(const std::string& name, const json& j, const uint8_t* data,
                        uint64_t data_size, const std::string& path) {
    const std::string ctx = tensor_ctx(path, name);
    check(j.is_object(), ctx + "header entry must be an object");
    TensorView t;
    t.name = name;
    check(j.contains("dtype") && j["dtype"].is_string(), ctx + "missing \"dtype\"");
    const std::string dt = j["dtype"].get<std::string>();
    check(parse_dtype(dt, &t.dtype), ctx + "unsupported dtype \"" + dt + "\" (supported: F32, F16, BF16, I32, I64)");
    t.shape = parse_shape(j, ctx);

    const json* off = j.contains("data_offsets") ? &j["data_offsets"] : nullptr;
    uint64_t begin = 0, end = 0;
    check(off && off->is_array() && off->size() == 2 && get_count((*off)[0], &begin) &&
              get_count((*off)[1], &end) && begin <= end,
          ctx + "\"data_offsets\" must be [begin, end] with 0 <= begin <= end");
    check(end <= data_size, ctx + "data ends at byte " + std::to_string(end) + " but the data section has only " +
                                std::to_string(data_size) + " bytes (file truncated?)");
    // numel * size must not overflow before we compare it with the byte range.
    uint64_t nbytes = dtype_size(t.dtype);
    for (int64_t d : t.shape)
        check(!__builtin_mul_overflow(nbytes, uint64_t(d), &nbytes), ctx + "shape " + shape_str(t.shape) + " is too large");
    check(end - begin == nbytes, ctx + "data_offsets cover " + std::to_string(end - begin) + " bytes but " + dt +
                                     " " + shape_str(t.shape) + " needs " + std::to_string(nbytes));
    t.data = data + begin;
    t.nbytes = nbytes;
    return t;
}

std::map<std::string, std::string> parse_metadata(const json& j, const std::string& path) {
    check(j.is_object(), path + ": \"__metadata__\" must be an object of strings");
    std::map<std::string, std::string> meta;
    for (auto it = j.begin(); it != j.end(); ++it) {
        check(it.value().is_string(), path + ": \"__metadata__\" value for \"" + it.key() + "\" must be a string");
        meta[it.key()] = it.value().get<std::string>();
    }
    return meta;
}

// Validates the mapped bytes and fills tensors/metadata; throws Error naming the file.
void parse_file(const std::string& path, const uint8_t* base, size_t size, std::vector<TensorView>* tensors,
                std::map<std::string, std::string>* metadata) {
    check(size >= 8, path + ": file is " + std::to_string(size) + " bytes, too short for a safetensors header");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];  // little-endian on any host
    check(hlen <= kMaxHeaderBytes, path + ": header length " + std::to_string(hlen) +
                                       " is absurd (over 100 MB): not a safetensors file?");
    check(hlen <= size - 8, path + ": header length " + std::to_string(hlen) + " exceeds the file size " +
                                std::to_string(size) + " (file truncated?)");
    const char* hdr = reinterpret_cast<const char*>(base + 8);
    json j;
    try {
        j = json::parse(hdr, hdr + hlen);
    } catch (const json::exception& e) {
        throw Error(path + ": header is not valid JSON: " + e.what());
    }
    check(j.is_object(), path + ": header must be a JSON object");

    const uint8_t* data = base + 8 + hlen;
    const uint64_t data_size = size - 8 - hlen;
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (it.key() == "__metadata__") *metadata = parse_metadata(it.value(), path);
        else tensors->push_back(parse_tensor(it.key(), it.value(), data, data_size, path));
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// reading

SafeTensorsFile::SafeTensorsFile(const std::string& path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY);
    check(fd >= 0, path + ": cannot open: " + std::strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(path + ": not a regular file");
    }
    map_size_ = size_t(st.st_size);
    if (map_size_ > 0) {  // mmap of length 0 fails; parse_file reports the short file instead
        map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
        int err = errno;
        ::close(fd);
        if (map_ == MAP_FAILED) {
            map_ = nullptr;
            throw Error(path + ": mmap failed: " + std::strerror(err));
        }
    } else {
        ::close(fd);
    }
    // The destructor does not run when a constructor throws, so unmap here.
    try {
        parse_file(path, static_cast<const uint8_t*>(map_), map_size_, &tensors_, &metadata_);
    } catch (...) {
        if (map_) ::munmap(map_, map_size_);
        throw;
    }
}

SafeTensorsFile::~SafeTensorsFile() {
    if (map_) ::munmap(map_, map_size_);
}

const TensorView* SafeTensorsFile::find(const std::string& name) const {
    for (const TensorView& t : tensors_)
        if (t.name == name) return &t;
    return nullptr;
}

const TensorView& SafeTensorsFile::get(const std::string& name) const {
    const TensorView* t = find(name);
    check(t != nullptr, tensor_ctx(path_, name) + "not found");
    return *t;
}

namespace {

const TensorView& get_with_shape(const SafeTensorsFile& f, const std::string& name,
                                 const std::vector<int64_t>& shape) {
    const TensorView& t = f.get(name);
    check(t.shape == shape, tensor_ctx(f.path(), name) + "shape " + shape_str(t.shape) + " but expected " +
                                shape_str(shape));
    return t;
}

// Tensor data in the file need not be aligned, so elements are loaded with memcpy.
template <typename T>
T load(const uint8_t* p, size_t i) {
    T v;
    std::memcpy(&v, p + i * sizeof(T), sizeof(T));
    return v;
}

template <typename Real, typename Convert>
void convert_all(const uint8_t* src, size_t n, Real* dst, Convert conv) {
#pragma omp parallel for if (n > (1 << 16)) schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = Real(conv(src, i));
}

}  // namespace

template <typename Real>
void SafeTensorsFile::read(const std::string& name, const std::vector<int64_t>& shape, Real* dst) const {
    const TensorView& t = get_with_shape(*this, name, shape);
    const size_t n = t.numel();
    switch (t.dtype) {
        case DType::F32:
            if constexpr (std::is_same<Real, float>::value) {
                if (t.nbytes > 0) std::memcpy(dst, t.data, t.nbytes);  // an empty tensor's dst may be null
            } else {
                convert_all(t.data, n, dst, load<float>);
            }
            return;
        case DType::BF16:
            convert_all(t.data, n, dst, [](const uint8_t* p, size_t i) { return bf16_to_f32(load<uint16_t>(p, i)); });
            return;
        case DType::F16:
            convert_all(t.data, n, dst, [](const uint8_t* p, size_t i) { return f16_to_f32(load<uint16_t>(p, i)); });
            return;
        default:
            throw Error(tensor_ctx(path_, name) + "dtype " + dtype_name(t.dtype) +
                        " is an integer type, expected a floating-point tensor");
    }
}

template void SafeTensorsFile::read<float>(const std::string&, const std::vector<int64_t>&, float*) const;
template void SafeTensorsFile::read<double>(const std::string&, const std::vector<int64_t>&, double*) const;

void SafeTensorsFile::read_i32(const std::string& name, const std::vector<int64_t>& shape, int32_t* dst) const {
    const TensorView& t = get_with_shape(*this, name, shape);
    if (t.dtype == DType::I32) {
        if (t.nbytes > 0) std::memcpy(dst, t.data, t.nbytes);
        return;
    }
    check(t.dtype == DType::I64, tensor_ctx(path_, name) + "dtype " + dtype_name(t.dtype) + ", expected I32 or I64");
    for (size_t i = 0, n = t.numel(); i < n; i++) {
        int64_t v = load<int64_t>(t.data, i);
        check(v >= INT32_MIN && v <= INT32_MAX, tensor_ctx(path_, name) + "element " + std::to_string(i) + " = " +
                                                    std::to_string(v) + " does not fit in int32");
        dst[i] = int32_t(v);
    }
}

// ---------------------------------------------------------------------------------------------
// writing

namespace {

size_t numel_of(const std::vector<int64_t>& shape) {
    size_t n = 1;
    for (int64_t d : shape) n *= size_t(d);
    return n;
}

// The JSON header, in the given tensor order, padded with spaces so the data starts 8-byte aligned.
std::string build_header(const std::string& path, const std::vector<TensorOut>& tensors,
                         const std::map<std::string, std::string>& metadata) {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    if (!metadata.empty()) h["__metadata__"] = metadata;
    std::set<std::string> seen;
    uint64_t offset = 0;
    for (const TensorOut& t : tensors) {
        const std::string ctx = tensor_ctx(path, t.name);
        check(t.name != "__metadata__" && seen.insert(t.name).second, ctx + "duplicate or reserved name");
        for (int64_t d : t.shape) check(d >= 0, ctx + "negative dimension in shape " + shape_str(t.shape));
        const uint64_t nbytes = numel_of(t.shape) * dtype_size(t.dtype);
        check(t.data != nullptr || nbytes == 0, ctx + "no data");
        h[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
        offset += nbytes;
    }
    std::string s = h.dump();
    s.append((8 - s.size() % 8) % 8, ' ');
    return s;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    const std::string header = build_header(path, tensors, metadata);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
    AtomicWriter w(path);
    w.write(len, 8);
    w.write(header.data(), header.size());
    for (const TensorOut& t : tensors) w.write(t.data, numel_of(t.shape) * dtype_size(t.dtype));
    w.commit();
}

}  // namespace rusca
