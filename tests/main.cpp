// main.cpp: GoogleTest entry point that ends with the one summary line CI reads:
// "N passed, N failed, N skipped". Tests run from the repository root so data/ paths resolve.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
    testing::InitGoogleTest(&argc, argv);
    if (chdir(RUSCA_SOURCE_DIR) != 0) std::perror("chdir to the source directory");
    int rc = RUN_ALL_TESTS();
    const testing::UnitTest& u = *testing::UnitTest::GetInstance();
    std::printf("%d passed, %d failed, %d skipped\n", u.successful_test_count(), u.failed_test_count(),
                u.skipped_test_count());
    return rc;
}
