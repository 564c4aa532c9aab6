// rng.h: a small, serializable random number generator (xoshiro256**, seeded by splitmix64).
// We own it instead of using <random> engines so a checkpoint can store its exact state in four
// integers and a resumed run draws the same numbers as an uninterrupted one.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace rusca {

struct Rng {
    uint64_t s[4];

    explicit Rng(uint64_t seed = 0) { reseed(seed); }
    void reseed(uint64_t seed) {
        for (uint64_t& x : s) {  // splitmix64 spreads a small seed over all 256 bits
            seed += 0x9e3779b97f4a7c15ull;
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            x = z ^ (z >> 31);
        }
    }
    uint64_t next() {
        const uint64_t result = rotl(s[1] * 5, 7) * 9;
        const uint64_t t = s[1] << 17;
        s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
    }
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    uint64_t below(uint64_t n) { return uint64_t(uniform() * double(n)); }  // [0, n)
    double normal() {  // Box-Muller; one value per call keeps the state simple to save
        double u1 = uniform(), u2 = uniform();
        return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(6.283185307179586 * u2);
    }

    std::string save() const {
        return std::to_string(s[0]) + " " + std::to_string(s[1]) + " " + std::to_string(s[2]) + " " +
               std::to_string(s[3]);
    }
    bool load(const std::string& text) {
        unsigned long long a, b, c, d;
        if (std::sscanf(text.c_str(), "%llu %llu %llu %llu", &a, &b, &c, &d) != 4) return false;
        s[0] = a, s[1] = b, s[2] = c, s[3] = d;
        return true;
    }

private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
};

}  // namespace rusca
