// test_safetensors.cpp: safetensors round trips, fp32 <-> bf16/f16 conversion, and one test per
// kind of malformed file, each checking that the error names the file (and tensor).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>

#include "host/error.h"
#include "host/fileio.h"
#include "host/safetensors.h"
#include "test_util.h"

namespace rusca {
namespace {
using namespace rusca::testutil;



// A file with header `json` (8-byte length prefix) followed by `data_bytes` zero bytes.
void write_raw_header(const std::string& path, const std::string& json, size_t data_bytes) {
    std::string s(8, '\0');
    uint64_t n = json.size();
    std::memcpy(&s[0], &n, 8);
    write_file_atomic(path, s + json + std::string(data_bytes, '\0'));
}

float bits_f(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

TEST(SafeTensors, RoundTripAllDtypesAndMetadata) {
    TempDir tmp;
    const std::string path = tmp.file("t.safetensors");
    std::vector<float> f32 = {1.5f, -2.25f, 3e-8f, 1e30f, -0.0f, 7.0f};
    std::vector<uint16_t> bf16 = {f32_to_bf16(1.0f), f32_to_bf16(-3.5f), f32_to_bf16(0.15625f)};
    std::vector<uint16_t> f16 = {f32_to_f16(0.5f), f32_to_f16(-65504.0f), f32_to_f16(0.0009765625f), 0x0001};
    std::vector<int32_t> i32 = {0, -1, 2147483647, -2147483647 - 1};
    std::vector<int64_t> i64 = {5, -6};
    write_safetensors(path,
                      {{"a.f32", DType::F32, {2, 3}, f32.data()},
                       {"b.bf16", DType::BF16, {3}, bf16.data()},
                       {"c.f16", DType::F16, {2, 2}, f16.data()},
                       {"d.i32", DType::I32, {4}, i32.data()},
                       {"e.i64", DType::I64, {1, 2}, i64.data()},
                       {"f.empty", DType::F32, {0, 3}, nullptr},
                       {"g.scalar", DType::F32, {}, f32.data()}},
                      {{"format", "pt"}, {"step", "12"}});
    EXPECT_FALSE(file_exists(path + ".tmp"));

    SafeTensorsFile f(path);
    ASSERT_EQ(f.tensors().size(), 7u);
    EXPECT_EQ(f.tensors()[0].name, "a.f32");  // header keeps the order we wrote
    EXPECT_EQ(f.metadata().at("format"), "pt");
    EXPECT_EQ(f.metadata().at("step"), "12");

    std::vector<float> got(6);
    f.read("a.f32", {2, 3}, got.data());
    EXPECT_EQ(std::memcmp(got.data(), f32.data(), 24), 0);
    std::vector<double> gotd(6);
    f.read("a.f32", {2, 3}, gotd.data());
    for (int i = 0; i < 6; i++) EXPECT_EQ(gotd[i], double(f32[i]));

    f.read("b.bf16", {3}, got.data());
    EXPECT_EQ(got[0], 1.0f);
    EXPECT_EQ(got[1], -3.5f);
    EXPECT_EQ(got[2], 0.15625f);
    f.read("c.f16", {2, 2}, got.data());
    EXPECT_EQ(got[0], 0.5f);
    EXPECT_EQ(got[1], -65504.0f);
    EXPECT_EQ(got[2], 0.0009765625f);
    EXPECT_EQ(got[3], std::ldexp(1.0f, -24));

    std::vector<int32_t> ints(4);
    f.read_i32("d.i32", {4}, ints.data());
    EXPECT_EQ(ints, i32);
    f.read_i32("e.i64", {1, 2}, ints.data());
    EXPECT_EQ(ints[0], 5);
    EXPECT_EQ(ints[1], -6);

    EXPECT_EQ(f.get("f.empty").numel(), 0u);
    EXPECT_EQ(f.get("g.scalar").numel(), 1u);
    f.read("g.scalar", {}, got.data());
    EXPECT_EQ(got[0], 1.5f);
    EXPECT_EQ(f.find("nope"), nullptr);
}

TEST(SafeTensors, HeaderIsSpacePaddedToEightBytes) {
    TempDir tmp;
    const std::string path = tmp.file("p.safetensors");
    float x = 1.0f;
    write_safetensors(path, {{"x", DType::F32, {1}, &x}});
    std::string bytes = read_file(path);
    uint64_t hlen;
    std::memcpy(&hlen, bytes.data(), 8);
    EXPECT_EQ(hlen % 8, 0u);
    EXPECT_EQ(bytes.size(), 8 + hlen + 4);
    const std::string hdr = bytes.substr(8, hlen);
    const size_t last = hdr.find_last_not_of(' ');  // everything after the JSON is space padding
    EXPECT_EQ(hdr[0], '{');
    EXPECT_EQ(hdr[last], '}');
    EXPECT_LT(hdr.size() - last - 1, 8u);
}

TEST(SafeTensors, Bf16KnownValues) {
    EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
    EXPECT_EQ(f32_to_bf16(-2.0f), 0xC000);
    EXPECT_EQ(f32_to_bf16(0.0f), 0x0000);
    EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
    EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);      // tie -> even (down)
    EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);  // tie -> even (up)
    EXPECT_EQ(f32_to_bf16(bits_f(0x3F808001)), 0x3F81);               // just above a tie -> up
    EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
    EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
    EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds up to Inf
    EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
    EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(bits_f(0x7F800001)))));  // low-payload NaN stays NaN
    EXPECT_EQ(bf16_to_f32(0x4049), 3.140625f);
    EXPECT_EQ(bf16_to_f32(0x0001), bits_f(0x00010000));  // subnormal
}

TEST(SafeTensors, F16KnownValues) {
    const float inf = std::numeric_limits<float>::infinity();
    EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
    EXPECT_EQ(f32_to_f16(-2.0f), 0xC000);
    EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
    EXPECT_EQ(f32_to_f16(1.0f / 3.0f), 0x3555);
    EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
    EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);
    EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);  // tie between 65504 and 65536 -> even -> Inf
    EXPECT_EQ(f32_to_f16(1e6f), 0x7C00);
    EXPECT_EQ(f32_to_f16(-inf), 0xFC00);
    EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
    EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
    EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie -> even (zero)
    EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
    EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp: tie -> even
    EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -30)), 0x0000);
    EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie -> even (down)
    EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie -> even (up)
    EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(std::nanf("")))));
    EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(bits_f(0x7F800001)))));
    EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(f16_to_f32(0x03FF), 1023 * std::ldexp(1.0f, -24));
    EXPECT_EQ(f16_to_f32(0x8001), -std::ldexp(1.0f, -24));
    EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
    EXPECT_EQ(f16_to_f32(0xFC00), -inf);
    EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
}

// Every finite 16-bit value converts to f32 exactly, so converting back must be the identity.
TEST(SafeTensors, SixteenBitRoundTripIsExact) {
    for (uint32_t h = 0; h < 0x10000; h++) {
        float b = bf16_to_f32(uint16_t(h));
        if (!std::isnan(b)) {
            ASSERT_EQ(f32_to_bf16(b), h) << std::hex << h;
        }
        float f = f16_to_f32(uint16_t(h));
        if (!std::isnan(f)) {
            ASSERT_EQ(f32_to_f16(f), h) << std::hex << h;
        }
    }
}

class SafeTensorsBad : public ::testing::Test {
protected:
    TempDir tmp;
    std::string path = tmp.file("bad.safetensors");
    void expect_open_error(const std::vector<std::string>& parts) {
        std::vector<std::string> all = {"bad.safetensors"};
        all.insert(all.end(), parts.begin(), parts.end());
        expect_error([&] { SafeTensorsFile f(path); }, all);
    }
    void write_valid() {
        std::vector<float> a(6, 1.0f), b(4, 2.0f);
        write_safetensors(path, {{"w.a", DType::F32, {2, 3}, a.data()}, {"w.b", DType::F32, {4}, b.data()}});
    }
};

TEST_F(SafeTensorsBad, MissingFile) { expect_open_error({"cannot open"}); }

TEST_F(SafeTensorsBad, ShorterThanEightBytes) {
    write_file_atomic(path, "abc");
    expect_open_error({"too short"});
    write_file_atomic(path, "");
    expect_open_error({"too short"});
}

TEST_F(SafeTensorsBad, TruncatedData) {
    write_valid();
    std::string bytes = read_file(path);
    write_file_atomic(path, bytes.substr(0, bytes.size() - 3));
    expect_open_error({"\"w.b\"", "truncated"});
}

TEST_F(SafeTensorsBad, TruncatedHeader) {
    write_valid();
    write_file_atomic(path, read_file(path).substr(0, 20));
    expect_open_error({"header length", "exceeds the file size"});
}

TEST_F(SafeTensorsBad, HeaderLengthAbsurd) {
    write_file_atomic(path, std::string(8, '\xff') + "{}");
    expect_open_error({"header length", "absurd"});
}

TEST_F(SafeTensorsBad, HeaderNotJson) {
    write_raw_header(path, "{\"a\": not json", 0);
    expect_open_error({"not valid JSON"});
}

TEST_F(SafeTensorsBad, HeaderNotObject) {
    write_raw_header(path, "[1, 2]  ", 0);
    expect_open_error({"JSON object"});
}

TEST_F(SafeTensorsBad, UnknownDtype) {
    write_raw_header(path, R"({"w.q": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}})", 2);
    expect_open_error({"\"w.q\"", "unsupported dtype \"Q4\""});
}

TEST_F(SafeTensorsBad, BadShape) {
    write_raw_header(path, R"({"w.s": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4);
    expect_open_error({"\"w.s\"", "shape"});
    write_raw_header(path, R"({"w.s": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4);
    expect_open_error({"\"w.s\"", "shape"});
    write_raw_header(path, R"({"w.s": {"dtype": "F32", "shape": 3, "data_offsets": [0, 4]}})", 4);
    expect_open_error({"\"w.s\"", "shape"});
}

TEST_F(SafeTensorsBad, BadOffsets) {
    write_raw_header(path, R"({"w.o": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4);
    expect_open_error({"\"w.o\"", "data section has only 4 bytes"});
    write_raw_header(path, R"({"w.o": {"dtype": "F32", "shape": [2], "data_offsets": [8, 4]}})", 8);
    expect_open_error({"\"w.o\"", "data_offsets"});
    write_raw_header(path, R"({"w.o": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", 8);
    expect_open_error({"\"w.o\"", "data_offsets"});
    write_raw_header(path, R"({"w.o": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8);
    expect_open_error({"\"w.o\"", "needs 12"});
    write_raw_header(path, R"({"w.o": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 8]}})", 8);
    expect_open_error({"\"w.o\"", "too large"});
}

TEST_F(SafeTensorsBad, MetadataNotStrings) {
    write_raw_header(path, R"({"__metadata__": {"step": 3}})", 0);
    expect_open_error({"__metadata__", "step"});
}

TEST_F(SafeTensorsBad, WrongShapeOnRead) {
    write_valid();
    SafeTensorsFile f(path);
    std::vector<float> buf(6);
    expect_error([&] { f.read("w.a", {3, 2}, buf.data()); },
                 {"bad.safetensors", "tensor \"w.a\"", "shape [2, 3] but expected [3, 2]"});
}

TEST_F(SafeTensorsBad, MissingTensor) {
    write_valid();
    SafeTensorsFile f(path);
    float x;
    expect_error([&] { f.read("w.zzz", {1}, &x); }, {"bad.safetensors", "\"w.zzz\"", "not found"});
}

TEST_F(SafeTensorsBad, WrongDtypeOnRead) {
    std::vector<int32_t> i = {1, 2};
    std::vector<int64_t> big = {int64_t(1) << 40};
    std::vector<float> f = {1.0f};
    write_safetensors(path, {{"w.i", DType::I32, {2}, i.data()}, {"w.big", DType::I64, {1}, big.data()},
                             {"w.f", DType::F32, {1}, f.data()}});
    SafeTensorsFile st(path);
    float buf[2];
    int32_t ibuf[2];
    expect_error([&] { st.read("w.i", {2}, buf); }, {"bad.safetensors", "\"w.i\"", "integer"});
    expect_error([&] { st.read_i32("w.big", {1}, ibuf); }, {"bad.safetensors", "\"w.big\"", "int32"});
    expect_error([&] { st.read_i32("w.f", {1}, ibuf); }, {"bad.safetensors", "\"w.f\"", "F32"});
}

TEST_F(SafeTensorsBad, WriteErrors) {
    float x = 1.0f;
    expect_error([&] { write_safetensors(path, {{"d", DType::F32, {1}, &x}, {"d", DType::F32, {1}, &x}}); },
                 {"bad.safetensors", "\"d\"", "duplicate"});
    expect_error([&] { write_safetensors(tmp.file("no/such/dir/x.safetensors"), {{"d", DType::F32, {1}, &x}}); },
                 {"no/such/dir/x.safetensors"});
    EXPECT_FALSE(file_exists(path));
    EXPECT_FALSE(file_exists(path + ".tmp"));
}

TEST(FileIo, AtomicWriteReplacesAndMakeDirs) {
    TempDir tmp;
    const std::string dir = tmp.file("a/b/c");
    make_dirs(dir);
    make_dirs(dir);  // idempotent
    const std::string p = dir + "/f.txt";
    write_file_atomic(p, "one");
    write_file_atomic(p, "two");
    EXPECT_EQ(read_file(p), "two");
    EXPECT_FALSE(file_exists(p + ".tmp"));
    expect_error([&] { read_file(dir + "/missing"); }, {"missing", "cannot open"});
    write_file_atomic(tmp.file("plain"), "x");
    expect_error([&] { make_dirs(tmp.file("plain")); }, {"plain"});
    {
        AtomicWriter w(dir + "/aborted");
        w.write("abc", 3);
    }  // destroyed without commit: nothing is left behind
    EXPECT_FALSE(file_exists(dir + "/aborted"));
    EXPECT_FALSE(file_exists(dir + "/aborted.tmp"));
}

}  // namespace
}  // namespace rusca
