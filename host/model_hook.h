// model_hook.h: a test hook on make_model() (host/model_factory.cpp). While set, make_model() (and so
// load_model()) passes every model it builds through `wrap`, e.g. into a model that throws on a
// chosen call, to check that a device fault stops a run instead of skipping a step
// (tests/test_step_errors.cpp). An empty function clears it. Tests only.
#pragma once
#include <functional>
#include <memory>

#include "model.h"

namespace rusca {

void set_model_wrapper(std::function<std::unique_ptr<Model>(std::unique_ptr<Model>)> wrap);

}  // namespace rusca
