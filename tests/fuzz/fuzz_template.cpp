// fuzz_template.cpp: the text-template format (host/template_file.cpp) through both real readers:
// the scaffold template (then rendered) and the judge template (from a file).
#include "host/judge.h"
#include "host/scaffold.h"
#include "host/template_file.h"
#include "tests/fuzz/fuzz_target.h"

RUSCA_FUZZ_TARGET(template) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    rusca::fuzz::expect_clean("fuzz/scaffold.txt", [&] {
        const rusca::ScaffoldTemplate t = rusca::ScaffoldTemplate::parse(text, "fuzz/scaffold.txt");
        rusca::Criterion good, bad;
        good.text = "say {points} things", good.points = 3;
        bad.text = "{criterion}", bad.points = -2;
        t.render({&good, &bad});
    });
    const std::string path = rusca::fuzz::scratch_file("fuzz_judge_template.txt", data, size);
    rusca::fuzz::expect_clean(path, [&] {
        const rusca::JudgeTemplate j = rusca::JudgeTemplate::load(path);
        rusca::substitute(j.prefix, {{"{conversation}", "user: hi"}, {"{response}", "hello"}});
    });
}
