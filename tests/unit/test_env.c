/*
 * test_env.c — the table of environment knobs (base/env.h): every default parses, each type's
 * boundaries (the least and the greatest value accepted, one past either rejected, empty =
 * unset, trailing garbage rejected), the one-line messages, roe_env_check() on the real
 * environment, the getters (ROE_EP_EARLY_US=0 means at once), and launcher variables that are
 * not numbers reading as unset.
 */
#include <stdlib.h>

#include "base/env.h"
#include "harness.h"
#include "kernels/backend.h"

/* Parses text as knob `name`; 1 if accepted. */
static int accepts(const char *name, const char *text, struct roe_env_value *v) {
    return roe_env_parse(roe_env_knob(name), text, v) == ROE_OK;
}

static void unset_all(void) {
    int n;
    const struct roe_env_knob *k = roe_env_knobs(&n);
    for (int i = 0; i < n; i++) unsetenv(k[i].name);
}

TEST(every_default_parses) {
    int n;
    const struct roe_env_knob *k = roe_env_knobs(&n);
    ASSERT_TRUE(n >= 11);
    for (int i = 0; i < n; i++) {
        struct roe_env_value v;
        ASSERT_OK(roe_env_parse(&k[i], NULL, &v));
        ASSERT_TRUE(k[i].help && *k[i].help);
        ASSERT_TRUE(roe_env_knob(k[i].name) == &k[i]);
        if (k[i].type == ROE_ENV_CHOICE && k[i].def) ASSERT_TRUE(v.i >= 0);
    }
    ASSERT_TRUE(roe_env_knob("ROE_NOT_A_KNOB") == NULL);
}

TEST(integer_bounds) {
    struct roe_env_value v;
    ASSERT_TRUE(accepts("ROE_EP_EARLY_US", "0", &v));
    ASSERT_EQ_INT(v.i, 0);
    ASSERT_TRUE(accepts("ROE_EP_EARLY_US", "10000000", &v));
    ASSERT_EQ_INT(v.i, 10000000);
    ASSERT_TRUE(!accepts("ROE_EP_EARLY_US", "10000001", &v));
    ASSERT_TRUE(!accepts("ROE_EP_EARLY_US", "-1", &v));
    ASSERT_TRUE(accepts("ROE_EP_EARLY_US", "", &v)); /* empty = unset: the default */
    ASSERT_EQ_INT(v.i, 100);
    ASSERT_TRUE(accepts("ROE_EP_EARLY_US", NULL, &v));
    ASSERT_EQ_INT(v.i, 100);
    ASSERT_TRUE(!accepts("ROE_EP_EARLY_US", "12abc", &v));
    ASSERT_TRUE(!accepts("ROE_EP_EARLY_US", " 12", &v));
    ASSERT_TRUE(!accepts("ROE_EP_EARLY_US", "1.5", &v));
    ASSERT_TRUE(accepts("ROE_TEST_CONTROL_VERSION", "2147483647", &v));
    ASSERT_TRUE(!accepts("ROE_TEST_CONTROL_VERSION", "2147483648", &v));
    ASSERT_TRUE(!accepts("ROE_TEST_CONTROL_VERSION", "99999999999999999999999", &v));
    ASSERT_FAILS_WITH(roe_env_parse(roe_env_knob("ROE_EP_EARLY_US"), "abc", &v),
                      ROE_ERR_INVALID_ARG, "ROE_EP_EARLY_US='abc' is not an integer in [0, 10000000]");
}

TEST(number_bounds) {
    struct roe_env_value v;
    ASSERT_TRUE(accepts("ROE_COMM_TIMEOUT_S", "0.001", &v));
    ASSERT_NEAR(v.num, 0.001, 0);
    ASSERT_TRUE(!accepts("ROE_COMM_TIMEOUT_S", "0.0009", &v));
    ASSERT_TRUE(!accepts("ROE_COMM_TIMEOUT_S", "0", &v));
    ASSERT_TRUE(accepts("ROE_COMM_TIMEOUT_S", "1e7", &v));
    ASSERT_TRUE(!accepts("ROE_COMM_TIMEOUT_S", "10000000.5", &v));
    ASSERT_TRUE(accepts("ROE_COMM_TIMEOUT_S", "", &v));
    ASSERT_NEAR(v.num, 60.0, 0);
    ASSERT_TRUE(!accepts("ROE_COMM_TIMEOUT_S", "12abc", &v));
    ASSERT_TRUE(!accepts("ROE_COMM_TIMEOUT_S", "60s", &v));
    ASSERT_TRUE(!accepts("ROE_COMM_TIMEOUT_S", "nan", &v));
    ASSERT_TRUE(!accepts("ROE_COMM_TIMEOUT_S", "inf", &v));
    ASSERT_FAILS_WITH(roe_env_parse(roe_env_knob("ROE_COMM_TIMEOUT_S"), "-1", &v),
                      ROE_ERR_INVALID_ARG, "ROE_COMM_TIMEOUT_S='-1' is not a number in [0.001, 10000000]");
}

TEST(choices_bools_paths) {
    struct roe_env_value v;
    ASSERT_TRUE(accepts("ROE_CPU_ISA", "avx512", &v));
    ASSERT_EQ_INT(v.i, ROE_ENV_ISA_AVX512);
    ASSERT_TRUE(accepts("ROE_CPU_ISA", "portable", &v));
    ASSERT_EQ_INT(v.i, ROE_ENV_ISA_PORTABLE);
    ASSERT_TRUE(accepts("ROE_CPU_ISA", "", &v)); /* no default: index -1, no text */
    ASSERT_EQ_INT(v.i, -1);
    ASSERT_TRUE(v.str == NULL);
    ASSERT_TRUE(!accepts("ROE_CPU_ISA", "AVX2", &v));
    ASSERT_TRUE(!accepts("ROE_CPU_ISA", "avx2 ", &v));
    ASSERT_FAILS_WITH(roe_env_parse(roe_env_knob("ROE_CPU_ISA"), "bogus", &v), ROE_ERR_INVALID_ARG,
                      "ROE_CPU_ISA='bogus' is not one of: avx512, avx2, portable");
    ASSERT_TRUE(accepts("ROE_HOME_POLICY", NULL, &v));
    ASSERT_EQ_STR(v.str, "round-robin");
    ASSERT_TRUE(accepts("ROE_EP_OVERLAP", "0", &v));
    ASSERT_EQ_INT(v.i, 0);
    ASSERT_TRUE(accepts("ROE_EP_OVERLAP", "1", &v));
    ASSERT_EQ_INT(v.i, 1);
    ASSERT_TRUE(accepts("ROE_EP_OVERLAP", "", &v));
    ASSERT_EQ_INT(v.i, 1);
    ASSERT_TRUE(!accepts("ROE_EP_OVERLAP", "maybe", &v));
    ASSERT_TRUE(!accepts("ROE_EP_OVERLAP", "01", &v));
    ASSERT_TRUE(!accepts("ROE_EP_OVERLAP", "10", &v));
    ASSERT_TRUE(accepts("ROE_MODEL", "", &v));
    ASSERT_TRUE(v.str == NULL);
    ASSERT_TRUE(accepts("ROE_MODEL", "/some/dir", &v));
    ASSERT_EQ_STR(v.str, "/some/dir");
}

TEST(check_the_environment) {
    unset_all();
    ASSERT_OK(roe_env_check());
    setenv("ROE_LOG", "", 1); /* empty = unset */
    ASSERT_OK(roe_env_check());
    setenv("ROE_EP_WIRE", "f64", 1);
    ASSERT_FAILS_WITH(roe_env_check(), ROE_ERR_INVALID_ARG,
                      "ROE_EP_WIRE='f64' is not one of: f32, bf16");
    unset_all();
    setenv("ROE_EP_EARLY_US", "12abc", 1);
    ASSERT_FAILS_WITH(roe_env_check(), ROE_ERR_INVALID_ARG, "ROE_EP_EARLY_US='12abc'");
    unset_all();
}

TEST(getters) {
    unset_all();
    ASSERT_EQ_INT(roe_env_ep_early_us(), 100);
    ASSERT_EQ_INT(roe_env_log_level(), ROE_LOG_WARN);
    ASSERT_EQ_INT(roe_env_comm(), ROE_ENV_COMM_AUTO);
    ASSERT_EQ_INT(roe_env_cpu_isa(), ROE_CPU_ISA_AUTO);
    ASSERT_EQ_INT(roe_env_ep_overlap(), 1);
    ASSERT_EQ_STR(roe_env_ep_wire(), "f32");
    ASSERT_TRUE(roe_env_model_dir() == NULL && roe_env_placement() == NULL);
    setenv("ROE_EP_EARLY_US", "0", 1); /* at once, as struct roe_engine_opts.ep_early_us = 0 */
    setenv("ROE_LOG", "debug", 1);
    setenv("ROE_COMM", "mpi", 1);
    setenv("ROE_CPU_ISA", "avx2", 1);
    setenv("ROE_COMM_TIMEOUT_S", "2.5", 1);
    setenv("ROE_TEST_CONTROL_VERSION", "99", 1);
    ASSERT_EQ_INT(roe_env_ep_early_us(), 0);
    ASSERT_EQ_INT(roe_env_log_level(), ROE_LOG_DEBUG);
    ASSERT_EQ_INT(roe_env_comm(), ROE_ENV_COMM_MPI);
    ASSERT_EQ_INT(roe_env_cpu_isa(), ROE_CPU_ISA_AVX2);
    ASSERT_NEAR(roe_env_comm_timeout_s(), 2.5, 0);
    ASSERT_EQ_INT(roe_env_test_control_version(), 99);
    unset_all();
}

TEST(launcher_variables_not_numbers) {
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "abc", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "x2", 1);
    ASSERT_EQ_INT(roe_env_local_rank(), 0);
    ASSERT_EQ_INT(roe_env_local_size(), 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "99999999999999999999", 1);
    ASSERT_EQ_INT(roe_env_local_size(), 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "0", 1);
    ASSERT_EQ_INT(roe_env_local_size(), 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "3", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4", 1);
    ASSERT_EQ_INT(roe_env_local_rank(), 3);
    ASSERT_EQ_INT(roe_env_local_size(), 4);
    ASSERT_OK(roe_env_check()); /* not roe's knobs: never rejected */
    unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
}

int main(void) {
    RUN(every_default_parses);
    RUN(integer_bounds);
    RUN(number_bounds);
    RUN(choices_bools_paths);
    RUN(check_the_environment);
    RUN(getters);
    RUN(launcher_variables_not_numbers);
    return test_summary();
}
