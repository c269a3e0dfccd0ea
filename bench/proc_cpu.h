/* KDC CPU accounting from /proc, shared by the load generators (kdc_loadgen, krb5_load). Header
 * only: krb5_load links MIT's libkrb5 and nothing of cablekey.
 *
 * A KDC is a set of pids (MIT's krb5kdc -w N: the supervisor and its forked workers; cablekey-kdc:
 * one process whose stat covers all its threads). Two clocks:
 *   - utime+stime from /proc/PID/stat, in clock ticks (10 ms);
 *   - the per-thread on-CPU nanoseconds of /proc/PID/task/TID/schedstat (CONFIG_SCHEDSTATS),
 *     exact, reported beside the first as a cross-check. */
#ifndef CK_BENCH_PROC_CPU_H
#define CK_BENCH_PROC_CPU_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>

#define PROC_CPU_MAX_PIDS 16

struct proc_pids {
    int n;
    int pid[PROC_CPU_MAX_PIDS];
};

/* Adds pid unless already there; -1 when full. */
static inline int
proc_pids_add(struct proc_pids *s, int pid)
{
    for (int i = 0; i < s->n; i++)
        if (s->pid[i] == pid)
            return 0;
    if (s->n >= PROC_CPU_MAX_PIDS)
        return -1;
    s->pid[s->n++] = pid;
    return 0;
}

/* utime + stime of a process in clock ticks (/proc/PID/stat fields 14 and 15; for a multithreaded
 * process they include every thread). The command name (field 2) may contain spaces and
 * parentheses, so parsing starts after the last ')'. */
static inline int
proc_cpu_ticks(int pid, unsigned long long *ticks)
{
    char path[64], buf[1024];
    unsigned long long ut = 0, st = 0;
    FILE *f;
    size_t n;
    char *p;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if ((p = strrchr(buf, ')')) == NULL)
        return -1;
    /* After ") ": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15). */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    *ticks = ut + st;
    return 0;
}

/* Adds the direct children of every pid in s (MIT's krb5kdc -w N forks its workers, which do all
 * the work), from /proc/PID/task/TID/children. */
static inline void
proc_pids_add_children(struct proc_pids *s)
{
    int nparents = s->n;

    for (int i = 0; i < nparents; i++) {
        char path[384], tids[64];
        struct dirent *de;
        DIR *d;

        snprintf(tids, sizeof(tids), "/proc/%d/task", s->pid[i]);
        if ((d = opendir(tids)) == NULL)
            continue;
        while ((de = readdir(d)) != NULL) {
            FILE *f;
            int child;

            if (de->d_name[0] < '0' || de->d_name[0] > '9')
                continue;
            snprintf(path, sizeof(path), "/proc/%d/task/%s/children", s->pid[i], de->d_name);
            if ((f = fopen(path, "r")) == NULL)
                continue;
            while (fscanf(f, "%d", &child) == 1)
                (void)proc_pids_add(s, child);
            fclose(f);
        }
        closedir(d);
    }
}

static inline int
proc_pids_ticks(const struct proc_pids *s, unsigned long long *total)
{
    *total = 0;
    for (int i = 0; i < s->n; i++) {
        unsigned long long t;

        if (proc_cpu_ticks(s->pid[i], &t) != 0) {
            fprintf(stderr, "cannot read /proc/%d/stat\n", s->pid[i]);
            return -1;
        }
        *total += t;
    }
    return 0;
}

/* Nanosecond on-CPU time of every thread of a process. */
static inline int
proc_sched_ns(int pid, unsigned long long *ns)
{
    char path[384], buf[256];
    unsigned long long sum = 0;
    struct dirent *de;
    DIR *d;
    int found = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    if ((d = opendir(path)) == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        unsigned long long v;
        FILE *f;

        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", pid, de->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fgets(buf, sizeof(buf), f) != NULL && sscanf(buf, "%llu", &v) == 1) {
            sum += v;
            found = 1;
        }
        fclose(f);
    }
    closedir(d);
    *ns = sum;
    return found ? 0 : -1;
}

static inline int
proc_pids_sched_ns(const struct proc_pids *s, unsigned long long *total)
{
    *total = 0;
    for (int i = 0; i < s->n; i++) {
        unsigned long long v;

        if (proc_sched_ns(s->pid[i], &v) != 0)
            return -1;
        *total += v;
    }
    return 0;
}

/* Whole-machine busy and total time in clock ticks (/proc/stat "cpu" line), to tell how much of
 * the CPUs other processes took during a run: throughput is only comparable between runs that
 * had the machine to themselves, CPU per exchange is robust either way. */
static inline int
proc_machine_ticks(unsigned long long *busy, unsigned long long *total)
{
    unsigned long long v[8] = {0};
    char buf[512];
    FILE *f;
    int n;

    if ((f = fopen("/proc/stat", "r")) == NULL)
        return -1;
    n = fgets(buf, sizeof(buf), f) != NULL
            ? sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                     &v[3], &v[4], &v[5], &v[6], &v[7])
            : 0;
    fclose(f);
    if (n < 8)
        return -1;
    /* user nice system idle iowait irq softirq steal */
    *busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    *total = *busy + v[3] + v[4];
    return 0;
}

#endif
