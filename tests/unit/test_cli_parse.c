/* The CLI's time and duration parsers (tools/cablekey/parse.c, compiled in here): strict dates,
 * no normalisation, no trailing junk. */
#include <stdio.h>
#include <string.h>

#include "ck_test.h"
#include "cablekey/error.h"
#include "../../tools/cablekey/parse.c"

static void
time_valid(void)
{
    int64_t t = -1;

    CHECK_OK(cli_parse_time("0", &t));
    CHECK_INT_EQ(t, 0);
    CHECK_OK(cli_parse_time("1700000000", &t));
    CHECK_INT_EQ(t, 1700000000);
    CHECK_OK(cli_parse_time("1970-01-01", &t));
    CHECK_INT_EQ(t, 0);
    /* date -u -d '2027-02-28 12:34:56' +%s */
    CHECK_OK(cli_parse_time("2027-02-28 12:34:56", &t));
    CHECK_INT_EQ(t, INT64_C(1803818096));
    CHECK_OK(cli_parse_time("2027-02-28T12:34:56", &t));
    CHECK_INT_EQ(t, INT64_C(1803818096));
    CHECK_OK(cli_parse_time("2027-02-28 12:34", &t));
    CHECK_INT_EQ(t, INT64_C(1803818040));
    CHECK_OK(cli_parse_time("2028-02-29", &t));          /* a leap year */
    CHECK_INT_EQ(t, INT64_C(1835395200));
    CHECK_OK(cli_parse_time("2000-02-29", &t));          /* divisible by 400 */
    CHECK_OK(cli_parse_time("9999-12-31 23:59:59", &t));
    CHECK_INT_EQ(t, CLI_TIME_MAX);
}

static void
time_invalid(void)
{
    static const char *const bad[] = {
        "2027-02-30",  "2027-02-29",  "2100-02-29", "2027-04-31", "2027-13-01",
        "2027-00-10",  "2027-01-00",  "2027-01-32", "2027-01-01 24:00", "2027-01-01 23:60",
        "2027-01-01 23:59:60", "2027-1-01", "2027-01-1", "27-01-01", "2027-01-01x",
        "2027-01-01 ", " 2027-01-01", "2027-01-01 1:00", "2027-01-01 10:00:5",
        "2027/01/01",  "1969-12-31",  "-1", "+5", "1e9", "", "253402300800", "10000-01-01",
        "2027-01-01Z", "2027-01-01 10:00Z", "2027-01-01  10:00",
    };
    int64_t t = 42;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int ret = cli_parse_time(bad[i], &t);
        CHECK(ret == CK_ERR_INVAL);
        if (ret != CK_ERR_INVAL)
            fprintf(stderr, "  accepted '%s'\n", bad[i]);
    }
    CHECK_INT_EQ(t, 42); /* never written on failure */
    CHECK(cli_parse_time(NULL, &t) == CK_ERR_INVAL);
}

static void
durations(void)
{
    int64_t d = 0;

    CHECK_OK(cli_parse_duration("36000", &d));
    CHECK_INT_EQ(d, 36000);
    CHECK_OK(cli_parse_duration("1d12h", &d));
    CHECK_INT_EQ(d, 129600);
    CHECK_OK(cli_parse_duration("30h", &d));
    CHECK_INT_EQ(d, 108000);
    CHECK(cli_parse_duration("10x", &d) == CK_ERR_INVAL);
    CHECK(cli_parse_duration("h", &d) == CK_ERR_INVAL);
    CHECK(cli_parse_duration("", &d) == CK_ERR_INVAL);
    CHECK(cli_parse_duration("99999999999d", &d) == CK_ERR_INVAL);
}

CK_TEST_MAIN("cli_parse", CK_TEST_CASE(time_valid), CK_TEST_CASE(time_invalid),
             CK_TEST_CASE(durations))
