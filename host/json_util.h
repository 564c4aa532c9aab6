// json_util.h: checked access to parsed JSON, and a JSONL line reader with a line-length cap.
// nlohmann's own errors (type_error on a number where a string was expected, out_of_range, ...)
// do not say which file or field was wrong; these helpers turn every bad value into a rusca::Error
// "<where>: field "<name>": <why>" instead, where `where` is the file (and line, for JSONL).
#pragma once
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rusca {

// Parses `text`; invalid JSON is an Error "<where>: not valid JSON (<parser's message>)".
nlohmann::json parse_json(const std::string& text, const std::string& where);

// One JSON object, read field by field. Optional fields take a default when absent or null.
class JsonFields {
public:
    // Throws "<where>: expected a JSON object" unless j is an object. `prefix` names nested objects
    // ("rope_scaling.") in messages. Keeps a reference to j: it must outlive this.
    JsonFields(const nlohmann::json& j, std::string where, std::string prefix = "");

    bool has(const char* key) const;                   // present and not null
    const nlohmann::json* find(const char* key) const;  // nullptr when absent or null
    std::string str(const char* key) const;             // required string
    std::string str_or(const char* key, const std::string& dflt) const;
    // Integers in [lo, hi]; a float such as 5.0 is refused (config fields are counts).
    int64_t integer(const char* key, int64_t lo, int64_t hi) const;
    int64_t integer_or(const char* key, int64_t dflt, int64_t lo, int64_t hi) const;
    double number_or(const char* key, double dflt) const;  // any JSON number, finite
    bool flag_or(const char* key, bool dflt) const;
    JsonFields object(const char* key) const;  // required nested object

    [[noreturn]] void fail(const std::string& key, const std::string& why) const;
    const std::string& where() const { return where_; }

private:
    const nlohmann::json& j_;
    std::string where_, prefix_;
};

// An integer JSON value in [lo, hi], or an Error naming `where` and `field`.
int64_t json_integer(const nlohmann::json& v, int64_t lo, int64_t hi, const std::string& where,
                     const std::string& field);

// The longest JSONL line we read: a longer one is corruption (or an attack), refused before it is
// buffered whole. Real rubric/SFT lines are kilobytes.
constexpr size_t kMaxJsonlLineBytes = size_t(64) << 20;

// Reads a text file line by line (without the '\n'), refusing a line longer than `max_line` bytes
// with an Error naming the file and line.
class LineReader {
public:
    explicit LineReader(const std::string& path, size_t max_line = kMaxJsonlLineBytes);
    ~LineReader();
    LineReader(const LineReader&) = delete;
    LineReader& operator=(const LineReader&) = delete;

    bool next(std::string& line);  // false at the end of the file
    long lineno() const { return lineno_; }
    std::string where() const;  // "<path>:<line>: "

private:
    std::string path_;
    size_t max_line_;
    std::FILE* f_ = nullptr;
    std::vector<char> buf_;
    size_t pos_ = 0, len_ = 0;  // unread bytes are buf_[pos_, len_)
    long lineno_ = 0;
};

}  // namespace rusca
