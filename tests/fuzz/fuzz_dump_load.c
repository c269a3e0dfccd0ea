/* Fuzzes the dump reader (lib/store/dump.c, ck_store_load): every input is a dump loaded into a
 * new database with a fixed test stash, the master key the seed corpus (corpus/dump_load, made by
 * `cablekey db dump` from a realm with this stash) was written under, so mutations get past the
 * master-key check to the records, the key decryption and the trailer. A load that succeeds is
 * removed again; one that fails must leave no database behind. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/store_dump.h"
#include "cablekey/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A test realm's stash (FUZZ.TEST, master key kvno 1, aes256): a key for this test only. */
static const uint8_t test_stash[] = {
  0x43, 0x4b, 0x4d, 0x4b, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
  0x00, 0x12, 0x00, 0x20, 0x01, 0xb6, 0xfd, 0xf9, 0xb0, 0x4e, 0xde, 0xb0,
  0x8f, 0xec, 0x4f, 0xf3, 0x39, 0xf9, 0x34, 0x01, 0xd0, 0xe4, 0xe3, 0x71,
  0x1f, 0x40, 0x31, 0x02, 0x75, 0x4e, 0xf4, 0x0a, 0xbd, 0xf5, 0xe6, 0xe6
};

static char dir[64], stash[128], in[128], target[128];

static void
cleanup(void)
{
    char p[160];

    unlink(stash);
    unlink(in);
    snprintf(p, sizeof(p), "%s-wal", target);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", target);
    unlink(p);
    unlink(target);
    rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof(dir), "/tmp/ck-fuzz-dump-XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
    atexit(cleanup);
    snprintf(stash, sizeof(stash), "%s/kdc.db.stash", dir);
    snprintf(in, sizeof(in), "%s/in.dump", dir);
    snprintf(target, sizeof(target), "%s/kdc.db", dir);
    if (ck_file_write_atomic(stash, test_stash, sizeof(test_stash), 0) != 0)
        abort();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct stat st;
    int ret;
    FILE *f = fopen(in, "wb");

    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    ret = ck_store_load(target, stash, in, "fuzz", NULL);
    if (ret != 0 && lstat(target, &st) == 0)
        abort(); /* a refused load left a database behind */
    if (ret == 0) {
        char p[160];
        snprintf(p, sizeof(p), "%s-wal", target);
        unlink(p);
        snprintf(p, sizeof(p), "%s-shm", target);
        unlink(p);
        unlink(target);
    }
    return 0;
}
