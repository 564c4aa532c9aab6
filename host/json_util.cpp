// json_util.cpp: checked JSON field access and the capped JSONL line reader (json_util.h).
#include "json_util.h"

#include <cerrno>
#include <cmath>
#include <cstring>

#include "error.h"

namespace rusca {
using json = nlohmann::json;

json parse_json(const std::string& text, const std::string& where) {
    try {
        return json::parse(text);
    } catch (const json::exception& e) {
        throw Error(where + ": not valid JSON (" + e.what() + ")");
    }
}

static std::string brief(const json& v) {
    std::string s = v.dump();
    return s.size() > 40 ? s.substr(0, 40) + "..." : s;
}

int64_t json_integer(const json& v, int64_t lo, int64_t hi, const std::string& where, const std::string& field) {
    const std::string at = where + ": field \"" + field + "\": ";
    check(v.is_number_integer(), at + "expected an integer, got " + brief(v));
    // Unsigned values above INT64_MAX would wrap negative in get<int64_t>().
    const bool big = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX);
    const int64_t n = big ? INT64_MAX : v.get<int64_t>();
    check(!big && n >= lo && n <= hi,
          at + brief(v) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return n;
}

JsonFields::JsonFields(const json& j, std::string where, std::string prefix)
    : j_(j), where_(std::move(where)), prefix_(std::move(prefix)) {
    check(j.is_object(), where_ + ": " + (prefix_.empty() ? std::string("expected a JSON object")
                                                          : "field \"" + prefix_.substr(0, prefix_.size() - 1) +
                                                                "\": expected an object"));
}

void JsonFields::fail(const std::string& key, const std::string& why) const {
    throw Error(where_ + ": field \"" + prefix_ + key + "\": " + why);
}

const json* JsonFields::find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
}

bool JsonFields::has(const char* key) const { return find(key) != nullptr; }

std::string JsonFields::str(const char* key) const {
    const json* v = find(key);
    if (!v) fail(key, "missing (expected a string)");
    if (!v->is_string()) fail(key, "expected a string, got " + brief(*v));
    return v->get<std::string>();
}

std::string JsonFields::str_or(const char* key, const std::string& dflt) const { return has(key) ? str(key) : dflt; }

int64_t JsonFields::integer(const char* key, int64_t lo, int64_t hi) const {
    const json* v = find(key);
    if (!v) fail(key, "missing required field (expected an integer)");
    return json_integer(*v, lo, hi, where_, prefix_ + key);
}

int64_t JsonFields::integer_or(const char* key, int64_t dflt, int64_t lo, int64_t hi) const {
    return has(key) ? integer(key, lo, hi) : dflt;
}

double JsonFields::number_or(const char* key, double dflt) const {
    const json* v = find(key);
    if (!v) return dflt;
    if (!v->is_number()) fail(key, "expected a number, got " + brief(*v));
    const double d = v->get<double>();
    if (!std::isfinite(d)) fail(key, "must be finite");
    return d;
}

bool JsonFields::flag_or(const char* key, bool dflt) const {
    const json* v = find(key);
    if (!v) return dflt;
    if (!v->is_boolean()) fail(key, "expected true or false, got " + brief(*v));
    return v->get<bool>();
}

JsonFields JsonFields::object(const char* key) const {
    const json* v = find(key);
    if (!v) fail(key, "missing (expected an object)");
    return JsonFields(*v, where_, prefix_ + key + ".");
}

// ---------------------------------------------------------------------------------------------

LineReader::LineReader(const std::string& path, size_t max_line)
    : path_(path), max_line_(max_line), buf_(size_t(1) << 16) {
    f_ = std::fopen(path.c_str(), "rb");
    check(f_ != nullptr, path + ": cannot open: " + std::strerror(errno));
}

LineReader::~LineReader() {
    if (f_) std::fclose(f_);
}

std::string LineReader::where() const { return path_ + ":" + std::to_string(lineno_) + ": "; }

bool LineReader::next(std::string& line) {
    line.clear();
    bool started = false;
    for (;;) {
        if (pos_ == len_) {
            len_ = std::fread(buf_.data(), 1, buf_.size(), f_), pos_ = 0;
            if (len_ == 0) {
                check(!std::ferror(f_), path_ + ": read failed: " + std::strerror(errno));
                return started;  // a last line without '\n' still counts
            }
        }
        const char* begin = buf_.data() + pos_;
        const char* nl = static_cast<const char*>(std::memchr(begin, '\n', len_ - pos_));
        const size_t n = nl ? size_t(nl - begin) : len_ - pos_;
        if (!started) lineno_++, started = true;
        line.append(begin, n);
        pos_ += n + (nl ? 1 : 0);
        check(line.size() <= max_line_, where() + "line is longer than " + std::to_string(max_line_) +
                                            " bytes (corrupt file? JSONL lines are at most a few MB)");
        if (nl) return true;
    }
}

}  // namespace rusca
