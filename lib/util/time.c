#include <time.h>

#include "cablekey/util.h"

void
ck_now(int64_t *sec, int32_t *usec)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    *sec = ts.tv_sec;
    if (usec != NULL)
        *usec = (int32_t)(ts.tv_nsec / 1000);
}

int64_t
ck_monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
