// bpe.cpp: byte-level BPE from a Hugging Face tokenizer.json (see bpe.h for the steps and why).
// Sections: UTF-8 and byte-level helpers, the PCRE2 pre-tokenizer, parsing, encoding, decoding.
#include "tokenizer/bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <queue>
#include <tuple>

#include <nlohmann/json.hpp>

#include "host/error.h"
#include "host/fileio.h"

namespace rusca {

using json = nlohmann::json;

// ---- UTF-8 and byte-level helpers ------------------------------------------------------------

static std::string utf8_encode(uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
        s += char(cp);
    } else if (cp < 0x800) {
        s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
    } else {
        s += char(0xF0 | (cp >> 18)), s += char(0x80 | ((cp >> 12) & 0x3F));
        s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
    }
    return s;
}

// GPT-2's table: printable Latin-1 bytes map to themselves, the other 68 to U+0100.. in order.
const std::vector<std::string>& byte_to_unicode() {
    static const std::vector<std::string> table = [] {
        std::vector<std::string> t(256);
        auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
        uint32_t next = 256;
        for (int b = 0; b < 256; b++) t[b] = utf8_encode(printable(b) ? uint32_t(b) : next++);
        return t;
    }();
    return table;
}

// The inverse, keyed by the character's UTF-8 text.
static const std::unordered_map<std::string, uint8_t>& unicode_to_byte() {
    static const std::unordered_map<std::string, uint8_t> inverse = [] {
        std::unordered_map<std::string, uint8_t> m;
        for (int b = 0; b < 256; b++) m[byte_to_unicode()[b]] = uint8_t(b);
        return m;
    }();
    return inverse;
}

// Length of the UTF-8 sequence starting at s[i] if it is complete and valid, else the length of
// its longest valid prefix as a negative number (-1 for a stray byte): the "maximal subpart" rule.
static int utf8_sequence(const std::string& s, size_t i) {
    const uint8_t c = uint8_t(s[i]);
    if (c < 0x80) return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return -1;
    for (int k = 1; k <= need; k++) {
        if (i + k >= s.size()) return -k;
        const uint8_t b = uint8_t(s[i + k]);
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -k;
    }
    return need + 1;
}

std::string utf8_lossy(const std::string& bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (size_t i = 0; i < bytes.size();) {
        const int n = utf8_sequence(bytes, i);
        if (n > 0) out.append(bytes, i, n), i += n;
        else out += "\xEF\xBF\xBD", i += size_t(-n);
    }
    return out;
}

static size_t first_invalid_utf8(const std::string& s) {
    for (size_t i = 0; i < s.size();) {
        const int n = utf8_sequence(s, i);
        if (n < 0) return i;
        i += n;
    }
    return std::string::npos;
}

// ---- the pre-tokenizer: one compiled PCRE2 pattern, JIT-compiled when available ------------

class PreTokenizerRegex {
public:
    PreTokenizerRegex(const std::string& pattern, const std::string& where) : where_(where) {
        int err = 0;
        PCRE2_SIZE offset = 0;
        code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                              &err, &offset, nullptr);
        if (!code_) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            throw Error(where + ": regex does not compile at offset " + std::to_string(offset) + ": " +
                        reinterpret_cast<const char*>(msg));
        }
        pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
    }
    ~PreTokenizerRegex() { pcre2_code_free(code_); }

    // Cuts text into the matches and the gaps between them (the "Isolated" behavior), in order.
    template <typename Fn>
    void split(const std::string& text, Fn&& on_piece) const {
        thread_local std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
            pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
        const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
        size_t pos = 0;
        while (pos < text.size()) {
            const int rc = pcre2_match(code_, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) throw Error(where_ + ": regex failed with PCRE2 error " + std::to_string(rc));
            const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
            if (ov[0] > pos) on_piece(pos, ov[0]);
            if (ov[1] == ov[0]) {  // an empty match: step one character to make progress
                pos = ov[0] + std::max(1, utf8_sequence(text, ov[0]));
                continue;
            }
            on_piece(ov[0], ov[1]);
            pos = ov[1];
        }
        if (pos < text.size()) on_piece(pos, text.size());
    }

private:
    std::string where_;  // the tokenizer.json, for errors at match time (e.g. PCRE2's match limit)
    pcre2_code* code_ = nullptr;
};

// GPT-2's pattern: what a ByteLevel pre-tokenizer with use_regex = true splits on.
static const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// ---- parsing tokenizer.json -----------------------------------------------------------------

BpeTokenizer::BpeTokenizer(const std::string& path) : path_(path) { parse(path); }
BpeTokenizer::~BpeTokenizer() = default;

namespace {

// Field access that names the file and the JSON path in its errors.
struct Fields {
    const std::string& path;
    [[noreturn]] void fail(const std::string& field, const std::string& why) const {
        throw Error(path + ": " + field + ": " + why);
    }
    const json& get(const json& j, const char* key, const std::string& field) const {
        if (!j.is_object() || !j.contains(key)) fail(field, "missing");
        return j.at(key);
    }
    std::string str(const json& j, const std::string& field) const {
        if (!j.is_string()) fail(field, "expected a string, got " + j.dump().substr(0, 60));
        return j.get<std::string>();
    }
    bool flag(const json& j, const char* key, const std::string& field) const {
        if (!j.contains(key) || j.at(key).is_null()) return false;
        if (!j.at(key).is_boolean()) fail(field + "." + key, "expected true or false");
        return j.at(key).get<bool>();
    }
    // Ids index id_to_token_, so a huge one would allocate that many strings: the largest real
    // vocabularies are ~260k, and 2^24 leaves room while bounding the table (~0.5 GB).
    int id(const json& v, const std::string& field) const {
        if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0)) fail(field, "expected an id >= 0");
        if (v.get<uint64_t>() >= (uint64_t(1) << 24)) fail(field, "id " + v.dump() + " is over 2^24 (not a real vocabulary)");
        return v.get<int>();
    }
    bool null_or_empty(const json& j, const char* key) const {
        return !j.contains(key) || j.at(key).is_null() || (j.at(key).is_string() && j.at(key).get<std::string>().empty());
    }
};

// The regex of a Split pre-tokenizer ({"Regex": "..."}; a plain {"String": ...} is escaped).
std::string split_pattern(const Fields& f, const json& split, const std::string& field) {
    const json& pat = f.get(split, "pattern", field);
    if (f.str(f.get(split, "behavior", field), field + ".behavior") != "Isolated")
        f.fail(field + ".behavior", "only \"Isolated\" is supported");
    if (f.flag(split, "invert", field)) f.fail(field + ".invert", "only false is supported");
    if (pat.contains("Regex")) return f.str(pat.at("Regex"), field + ".pattern.Regex");
    f.fail(field + ".pattern", "only {\"Regex\": ...} patterns are supported");
}

}  // namespace

void BpeTokenizer::parse(const std::string& path) {
    const Fields f{path};
    json root;
    try {
        root = json::parse(read_file(path));
    } catch (const json::exception& e) {
        throw Error(path + ": not valid JSON (" + e.what() + ")");
    }
    // model: vocab and merges
    const json& model = f.get(root, "model", "model");
    if (f.str(f.get(model, "type", "model.type"), "model.type") != "BPE")
        f.fail("model.type", "only BPE tokenizers are supported (got " + model.at("type").dump() + ")");
    if (f.flag(model, "byte_fallback", "model")) f.fail("model.byte_fallback", "byte fallback is not supported");
    if (model.contains("dropout") && !model.at("dropout").is_null()) f.fail("model.dropout", "BPE dropout is not supported");
    if (!f.null_or_empty(model, "continuing_subword_prefix") || !f.null_or_empty(model, "end_of_word_suffix"))
        f.fail("model.continuing_subword_prefix", "subword prefixes/suffixes are not byte-level BPE");
    ignore_merges_ = f.flag(model, "ignore_merges", "model");
    const json& vocab = f.get(model, "vocab", "model.vocab");
    if (!vocab.is_object()) f.fail("model.vocab", "expected an object of token -> id");
    for (const auto& [tok, id] : vocab.items()) token_to_id_[tok] = f.id(id, "model.vocab." + tok);
    // added tokens may extend the vocabulary past the model's ids
    const json& added = root.contains("added_tokens") ? root.at("added_tokens") : json::array();
    if (!added.is_array()) f.fail("added_tokens", "expected an array");
    for (size_t i = 0; i < added.size(); i++) {
        const std::string field = "added_tokens[" + std::to_string(i) + "]";
        const json& a = added[i];
        AddedToken t;
        t.id = f.id(f.get(a, "id", field), field + ".id");
        t.content = f.str(f.get(a, "content", field), field + ".content");
        if (t.content.empty()) f.fail(field + ".content", "empty");
        t.special = f.flag(a, "special", field), t.normalized = f.flag(a, "normalized", field);
        t.lstrip = f.flag(a, "lstrip", field), t.rstrip = f.flag(a, "rstrip", field);
        t.single_word = f.flag(a, "single_word", field);
        token_to_id_[t.content] = t.id;
        added_first_byte_[uint8_t(t.content[0])] = true;
        added_.push_back(t);
    }
    int max_id = -1;
    for (const auto& [tok, id] : token_to_id_) max_id = std::max(max_id, id);
    id_to_token_.assign(size_t(max_id + 1), "");
    for (const auto& [tok, id] : token_to_id_) id_to_token_[size_t(id)] = tok;
    for (const AddedToken& t : added_) id_to_token_[size_t(t.id)] = t.content;  // an added token wins its id
    // merges: "a b" strings (older files) or ["a", "b"] pairs (newer); rank = position
    const json& merges = f.get(model, "merges", "model.merges");
    if (!merges.is_array()) f.fail("model.merges", "expected an array");
    for (size_t r = 0; r < merges.size(); r++) {
        const std::string field = "model.merges[" + std::to_string(r) + "]";
        std::string a, b;
        if (merges[r].is_string()) {
            const std::string m = merges[r].get<std::string>();
            const size_t sp = m.find(' ', 1);
            if (sp == std::string::npos) f.fail(field, "expected \"left right\"");
            a = m.substr(0, sp), b = m.substr(sp + 1);
        } else if (merges[r].is_array() && merges[r].size() == 2) {
            a = f.str(merges[r][0], field), b = f.str(merges[r][1], field);
        } else {
            f.fail(field, "expected \"left right\" or [left, right]");
        }
        const auto ia = token_to_id_.find(a), ib = token_to_id_.find(b), ic = token_to_id_.find(a + b);
        if (ia == token_to_id_.end() || ib == token_to_id_.end() || ic == token_to_id_.end())
            f.fail(field, "merges tokens not in the vocabulary: \"" + a + "\" + \"" + b + "\"");
        const uint64_t key = uint64_t(uint32_t(ia->second)) << 32 | uint32_t(ib->second);
        merges_.emplace(key, Merge{int(r), ic->second});  // the first (lowest) rank wins, as in HF
    }
    // normalizer: none or NFC
    if (root.contains("normalizer") && !root.at("normalizer").is_null()) {
        const std::string type = f.str(f.get(root.at("normalizer"), "type", "normalizer"), "normalizer.type");
        if (type != "NFC") f.fail("normalizer.type", "only NFC (or none) is supported, got \"" + type + "\"");
        nfc_ = true;
    }
    // pre-tokenizer: Sequence[Split(regex, Isolated), ByteLevel(use_regex=false)] or ByteLevel(use_regex=true)
    const json& pre = f.get(root, "pre_tokenizer", "pre_tokenizer");
    std::vector<json> steps;
    if (f.str(f.get(pre, "type", "pre_tokenizer"), "pre_tokenizer.type") == "Sequence") {
        const json& list = f.get(pre, "pretokenizers", "pre_tokenizer");
        if (!list.is_array()) f.fail("pre_tokenizer.pretokenizers", "expected an array");
        for (const json& p : list) steps.push_back(p);
    } else {
        steps.push_back(pre);
    }
    std::string pattern;
    bool byte_level = false;
    for (size_t i = 0; i < steps.size(); i++) {
        const std::string field = "pre_tokenizer[" + std::to_string(i) + "]";
        const std::string type = f.str(f.get(steps[i], "type", field), field + ".type");
        if (type == "Split" && pattern.empty() && !byte_level) {
            pattern = split_pattern(f, steps[i], field);
        } else if (type == "ByteLevel" && !byte_level) {
            if (f.flag(steps[i], "add_prefix_space", field)) f.fail(field + ".add_prefix_space", "only false is supported");
            const bool use_regex = !steps[i].contains("use_regex") || f.flag(steps[i], "use_regex", field);
            if (use_regex && !pattern.empty()) f.fail(field + ".use_regex", "a second regex after Split is not supported");
            if (use_regex) pattern = kGpt2Pattern;
            byte_level = true;
        } else {
            f.fail(field + ".type", "unsupported pre-tokenizer step \"" + type + "\"");
        }
    }
    if (!byte_level || pattern.empty()) f.fail("pre_tokenizer", "expected a split regex and a ByteLevel step");
    regex_ = std::make_unique<PreTokenizerRegex>(pattern, path + ": pre_tokenizer");
    // decoder: ByteLevel (what makes decode the inverse of the byte mapping)
    const json& dec = f.get(root, "decoder", "decoder");
    if (f.str(f.get(dec, "type", "decoder"), "decoder.type") != "ByteLevel")
        f.fail("decoder.type", "only the ByteLevel decoder is supported");
}

// ---- encoding --------------------------------------------------------------------------------

int BpeTokenizer::piece_to_id(const std::string& piece) const {
    const auto it = token_to_id_.find(piece);
    return it == token_to_id_.end() ? -1 : it->second;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static bool is_word_char(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

// Leftmost-longest matches of the added tokens of one kind (normalized or not) in `text`; the rest
// becomes text pieces. lstrip/rstrip widen a match over neighbouring whitespace (dropped, as HF does).
std::vector<BpeTokenizer::Piece> BpeTokenizer::split_added(const std::string& text, bool normalized_pass) const {
    std::vector<Piece> out;
    size_t text_start = 0, i = 0;
    while (i < text.size()) {
        if (!added_first_byte_[uint8_t(text[i])]) {
            i++;
            continue;
        }
        int best = -1;
        size_t best_len = 0;
        for (size_t k = 0; k < added_.size(); k++) {
            const AddedToken& t = added_[k];
            if (t.normalized != normalized_pass || t.content.size() <= best_len) continue;
            if (text.compare(i, t.content.size(), t.content) != 0) continue;
            const size_t end = i + t.content.size();
            if (t.single_word && ((i > 0 && is_word_char(text[i - 1])) || (end < text.size() && is_word_char(text[end]))))
                continue;
            best = int(k), best_len = t.content.size();
        }
        if (best < 0) {
            i++;
            continue;
        }
        size_t begin = i, end = i + best_len;
        if (added_[best].lstrip)
            while (begin > text_start && is_space(text[begin - 1])) begin--;
        if (added_[best].rstrip)
            while (end < text.size() && is_space(text[end])) end++;
        if (begin > text_start) out.push_back({text_start, begin, -1});
        out.push_back({begin, end, best});
        text_start = i = end;
    }
    if (text_start < text.size()) out.push_back({text_start, text.size(), -1});
    return out;
}

std::string BpeTokenizer::normalize(const std::string& text) const {
    if (!nfc_ || std::all_of(text.begin(), text.end(), [](char c) { return uint8_t(c) < 0x80; })) return text;
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), utf8proc_ssize_t(text.size()),
                                            &out, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (n < 0) throw Error("tokenizer " + path_ + ": NFC normalization failed: " + utf8proc_errmsg(n));
    std::string s(reinterpret_cast<const char*>(out), size_t(n));
    std::free(out);
    return s;
}

std::vector<int> BpeTokenizer::encode(const std::string& text) const {
    const size_t bad = first_invalid_utf8(text);
    if (bad != std::string::npos)
        throw Error("tokenizer " + path_ + ": text is not valid UTF-8 at byte " + std::to_string(bad));
    std::vector<int> ids;
    for (const Piece& p : split_added(text, false)) {
        if (p.added >= 0) {
            ids.push_back(added_[p.added].id);
            continue;
        }
        const std::string normalized = normalize(text.substr(p.begin, p.end - p.begin));
        for (const Piece& q : split_added(normalized, true)) {
            if (q.added >= 0) ids.push_back(added_[q.added].id);
            else encode_text(normalized.substr(q.begin, q.end - q.begin), ids);
        }
    }
    return ids;
}

void BpeTokenizer::encode_text(const std::string& text, std::vector<int>& out) const {
    regex_->split(text, [&](size_t b, size_t e) { encode_word(text.substr(b, e - b), out); });
}

// One pre-tokenized word: from the cache, or byte-mapped and merged (then cached).
void BpeTokenizer::encode_word(const std::string& word, std::vector<int>& out) const {
    {
        std::lock_guard<std::mutex> lock(cache_mu_);
        const auto it = cache_.find(word);
        if (it != cache_.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    std::string chars;
    for (unsigned char c : word) chars += byte_to_unicode()[c];
    std::vector<int> ids = merge_word(chars);
    out.insert(out.end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(word, std::move(ids));
}

// BPE on one word of byte-level characters: repeatedly merge the adjacent pair of lowest rank
// (leftmost on ties). Symbols form a linked list; a min-heap holds candidate pairs, and entries
// made stale by an earlier merge are skipped when popped.
std::vector<int> BpeTokenizer::merge_word(const std::string& chars) const {
    if (ignore_merges_) {
        const auto it = token_to_id_.find(chars);
        if (it != token_to_id_.end()) return {it->second};
    }
    struct Symbol { int id, prev, next; bool alive; };
    std::vector<Symbol> sym;
    for (size_t i = 0; i < chars.size();) {
        const size_t n = size_t(std::max(1, utf8_sequence(chars, i)));
        const auto it = token_to_id_.find(chars.substr(i, n));
        if (it != token_to_id_.end()) {  // a character outside the vocabulary is dropped (no unk), as in HF
            const int k = int(sym.size());
            sym.push_back({it->second, k - 1, k + 1, true});
        }
        i += n;
    }
    if (sym.empty()) return {};
    sym.back().next = -1;
    if (sym.size() > 1) sym[0].prev = -1;
    // (rank, left position, left id, right id): the ids detect stale entries
    using Cand = std::tuple<int, int, int, int>;
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto push_pair = [&](int left) {
        const int right = sym[left].next;
        if (left < 0 || right < 0) return;
        const auto it = merges_.find(uint64_t(uint32_t(sym[left].id)) << 32 | uint32_t(sym[right].id));
        if (it != merges_.end()) heap.emplace(it->second.rank, left, sym[left].id, sym[right].id);
    };
    for (int i = 0; i + 1 < int(sym.size()); i++) push_pair(i);
    while (!heap.empty()) {
        const auto [rank, left, left_id, right_id] = heap.top();
        heap.pop();
        const int right = sym[left].next;
        if (!sym[left].alive || right < 0 || sym[left].id != left_id || sym[right].id != right_id) continue;
        sym[left].id = merges_.at(uint64_t(uint32_t(left_id)) << 32 | uint32_t(right_id)).id;
        sym[right].alive = false;
        sym[left].next = sym[right].next;
        if (sym[right].next >= 0) sym[sym[right].next].prev = left;
        if (sym[left].prev >= 0) push_pair(sym[left].prev);
        push_pair(left);
    }
    std::vector<int> ids;
    for (int i = 0; i >= 0; i = sym[i].next) ids.push_back(sym[i].id);
    return ids;
}

// ---- decoding --------------------------------------------------------------------------------

// Each token's characters back to bytes; a token with a character outside the byte table (an added
// token such as "<|im start|>" with a space) contributes its raw UTF-8, as HF's ByteLevel decoder does.
std::string BpeTokenizer::decode(const std::vector<int>& ids) const {
    const auto& inverse = unicode_to_byte();
    std::string bytes;
    for (int id : ids) {
        if (id < 0 || id >= vocab_size() || id_to_token_[size_t(id)].empty())
            throw Error("tokenizer " + path_ + ": id " + std::to_string(id) + " is not in the vocabulary");
        const std::string& tok = id_to_token_[size_t(id)];
        std::string mapped;
        bool all_mapped = true;
        for (size_t i = 0; i < tok.size() && all_mapped;) {
            const size_t n = size_t(std::max(1, utf8_sequence(tok, i)));
            const auto it = inverse.find(tok.substr(i, n));
            if (it == inverse.end()) all_mapped = false;
            else mapped += char(it->second);
            i += n;
        }
        bytes += all_mapped ? mapped : tok;
    }
    return utf8_lossy(bytes);
}

}  // namespace rusca
