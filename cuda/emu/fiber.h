// fiber.h: the emulator's fibers, one per CUDA thread of the running block. A fiber runs until it
// reaches a barrier, a warp collective or the end of the kernel, then switches back to the block's
// scheduler (engine.cpp). Built on Boost.Context's fcontext (a switch is a few register moves, no
// system call). Stacks are mapped once per OS thread and reused by every block; each has a guard
// page, so an overflow faults instead of corrupting a neighbour.
#pragma once
#include <boost/context/detail/fcontext.hpp>

#include <cstddef>
#include <vector>

namespace rusca::emu {

using boost::context::detail::fcontext_t;

class FiberStacks {
public:
    static constexpr size_t kStackBytes = 256 * 1024;
    ~FiberStacks();
    // The stack of fiber slot i (0 <= i < 1024): [bottom, bottom + kStackBytes).
    char* bottom(int i);

private:
    std::vector<char*> stacks_;
};

// Make a fiber on `stack` that starts in `entry`; `entry` receives the first switch's data pointer.
fcontext_t make_fiber(char* stack_bottom, void (*entry)(boost::context::detail::transfer_t));

}  // namespace rusca::emu
