// sft_data.cpp: tokenizing SFT text / JSONL into rows, and the epoch-shuffled sampler.
#include "sft_data.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "error.h"
#include "json_util.h"
#include "rng.h"

namespace rusca {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

SftDataset::SftDataset(const std::string& path, const Tokenizer& tok, int T) : T_(T), pad_(tok.pad_id()) {
    check(T > 0, "sequence length must be positive");
    if (pad_ < 0) pad_ = std::max(tok.eos_id(), 0);
    std::ifstream probe(path);
    check(probe.good(), path + ": cannot open data file");
    if (ends_with(path, ".jsonl")) load_jsonl(path, tok);
    else load_text(path, tok);
    check(!rows_.empty(), path + ": no training examples (empty file?)");
}

void SftDataset::load_text(const std::string& path, const Tokenizer& tok) {
    std::ifstream f(path);
    std::vector<int> stream;
    std::string line;
    while (std::getline(f, line)) {
        if (line.empty()) continue;
        std::vector<int> ids = tok.encode(line, false, tok.eos_id() >= 0);
        stream.insert(stream.end(), ids.begin(), ids.end());
    }
    check(stream.size() > size_t(T_), path + ": only " + std::to_string(stream.size()) +
                                          " tokens, fewer than one sequence of " + std::to_string(T_ + 1));
    for (size_t start = 0; start + T_ + 1 <= stream.size(); start += T_)
        rows_.push_back({std::vector<int>(stream.begin() + start, stream.begin() + start + T_ + 1), 0});
}

void SftDataset::load_jsonl(const std::string& path, const Tokenizer& tok) {
    LineReader f(path);
    std::string line;
    while (f.next(line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = f.where();
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1E999
            throw Error(where + "invalid JSON (" + e.what() + ")");
        }
        auto text_field = [&](const char* key) {
            check(j.contains(key) && j[key].is_string(), where + "field \"" + key + "\" must be a string");
            return j[key].get<std::string>();
        };
        check(j.is_object(), where + "expected a JSON object");
        Row row;
        if (tok.bos_id() >= 0) row.seq.push_back(tok.bos_id());
        if (j.contains("text")) {
            std::vector<int> ids = tok.encode(text_field("text"));
            row.seq.insert(row.seq.end(), ids.begin(), ids.end());
        } else {
            check(j.contains("prompt") && j.contains("response"),
                  where + "expected {\"prompt\", \"response\"} or {\"text\"}");
            std::vector<int> p = tok.encode(text_field("prompt")), r = tok.encode(text_field("response"));
            row.seq.insert(row.seq.end(), p.begin(), p.end());
            row.first_target = int(row.seq.size()) - 1;  // target index of the first response token
            row.seq.insert(row.seq.end(), r.begin(), r.end());
        }
        if (tok.eos_id() >= 0) row.seq.push_back(tok.eos_id());
        if (row.seq.size() > size_t(T_ + 1)) row.seq.resize(T_ + 1), truncated_++;
        if (row.seq.size() >= 2 && row.first_target < int(row.seq.size()) - 1) rows_.push_back(std::move(row));
    }
}

void SftDataset::get(size_t i, int* tokens, int* targets) const {
    const Row& r = rows_.at(i);
    for (int t = 0; t < T_; t++) {
        bool has_next = t + 1 < int(r.seq.size());
        tokens[t] = t < int(r.seq.size()) ? r.seq[t] : pad_;
        targets[t] = has_next && t >= r.first_target ? r.seq[t + 1] : -1;
    }
}

long SftDataset::total_tokens() const {
    long n = 0;
    for (const Row& r : rows_) n += long(r.seq.size()) - 1 - r.first_target;
    return n;
}

void EpochSampler::shuffle() {
    order_.resize(n);
    for (size_t i = 0; i < n; i++) order_[i] = i;
    Rng rng(seed * 1000003ull + uint64_t(epoch));
    for (size_t i = n; i > 1; i--) std::swap(order_[i - 1], order_[rng.below(i)]);  // Fisher-Yates
}

size_t EpochSampler::next() {
    if (size_t(cursor) == n) epoch++, cursor = 0, shuffle();
    return order_[cursor++];
}

void EpochSampler::restore(long e, long c) {
    check(e >= 0 && c >= 0 && size_t(c) <= n, "train state: data position out of range for this dataset");
    epoch = e, cursor = c;
    shuffle();
}

}  // namespace rusca
