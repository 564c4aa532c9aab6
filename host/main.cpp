// main.cpp: the rusca binary. One subcommand per job; every error ends as one line
// "rusca: error: <what, naming the file / line / tensor / flag>" and exit status 1.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <exception>

#include "cli.h"
#include "comm.h"
#include "error.h"

// Prints the error; on one of several ranks (mpirun, srun), then ends every rank of the job, which
// would otherwise wait forever in their next collective.
static int fail(const char* what) {
    if (rusca::world_is_parallel()) {
        std::fprintf(stderr, "rusca: error: rank %d: %s\n", rusca::world().rank(), what);
        rusca::world().abort(1);
    }
    std::fprintf(stderr, "rusca: error: %s\n", what);
    return 1;
}

int main(int argc, char** argv) {
    // Past a file-size limit (ulimit -f) write() then fails with EFBIG, which the atomic writers
    // report with the file's name, instead of SIGXFSZ killing us mid-checkpoint.
    std::signal(SIGXFSZ, SIG_IGN);
    CLI::App app{"rusca: Rubric-Scaffolded RL (RuscaRL) trainer for Llama/Qwen-family models, C++/CUDA"};
    app.require_subcommand(1);
    app.fallthrough(false);
    rusca::add_info_command(app);
    rusca::add_rl_command(app);
    rusca::add_eval_command(app);
    rusca::add_sft_command(app);
    rusca::add_tokenizer_command(app);
    rusca::add_bench_command(app);
    rusca::add_forward_command(app);
    rusca::add_generate_command(app);
    rusca::add_judge_command(app);
    rusca::add_export_command(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help exits 0; a bad flag or value prints CLI11's message (it names the flag) and exits 2.
        return app.exit(e) == 0 ? 0 : 2;
    } catch (const rusca::Error& e) {
        return fail(e.what());
    } catch (const std::bad_alloc&) {
        return fail("out of host memory");
    } catch (const std::exception& e) {
        // Not ours (a library's type or range error): a bug to fix, but never an abort.
        return fail(e.what());
    } catch (...) {
        return fail("unknown exception");
    }
    return 0;
}
