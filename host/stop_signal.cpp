// stop_signal.cpp: the flag the handlers set; loops poll it between steps.
#include "stop_signal.h"

#include <csignal>

namespace rusca {

namespace {
volatile std::sig_atomic_t g_stop = 0;
void on_stop(int sig) { g_stop = sig; }
}  // namespace

StopSignals::StopSignals() {
    g_stop = 0;
    old_int_ = std::signal(SIGINT, on_stop);
    old_term_ = std::signal(SIGTERM, on_stop);
}

StopSignals::~StopSignals() {
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
}

bool StopSignals::requested() const { return g_stop != 0; }

}  // namespace rusca
