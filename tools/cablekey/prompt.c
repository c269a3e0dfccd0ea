/* Reading passwords and confirmations. On a terminal a password is asked twice with echo off
 * (termios), as kadmin does; from a pipe or file one line is read. Confirmations of destructive
 * verbs are asked on a terminal only: scripts say --yes. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "cli.h"

/* The terminal state to restore if a signal arrives while echo is off. */
static struct termios saved_tio;
static volatile sig_atomic_t echo_off;

static void
restore_and_reraise(int sig)
{
    if (echo_off)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    signal(sig, SIG_DFL);
    raise(sig);
}

void
cli_password_free(char *pw, size_t len)
{
    if (pw != NULL)
        ck_free_secret(pw, len + 1);
}

/* One line from stdin into a CLI_PASSWORD_MAX + 2 buffer; newline (and CR) stripped. */
static int
read_line(char *buf, size_t *len)
{
    size_t n;

    if (fgets(buf, CLI_PASSWORD_MAX + 2, stdin) == NULL)
        return ck_error_set(CK_ERR_INVAL, "no password on standard input");
    n = strlen(buf);
    if (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    else if (n > CLI_PASSWORD_MAX)
        return ck_error_set(CK_ERR_LIMIT, "password longer than %d bytes", CLI_PASSWORD_MAX);
    if (n > 0 && buf[n - 1] == '\r')
        buf[--n] = '\0';
    *len = n;
    return 0;
}

/* Prompts on the terminal with echo off and reads one line. */
static int
read_noecho(const char *prompt, char *buf, size_t *len)
{
    struct termios tio;
    struct sigaction sa, old_int, old_term, old_quit, old_tstp;
    int ret;

    if (tcgetattr(STDIN_FILENO, &saved_tio) != 0)
        return ck_error_set(CK_ERR_IO, "terminal: cannot turn echo off");
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = restore_and_reraise;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGQUIT, &sa, &old_quit);
    sigaction(SIGTSTP, &sa, &old_tstp);
    tio = saved_tio;
    tio.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    /* Echo goes off before the prompt appears: what is typed after the prompt is never shown. */
    echo_off = 1;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio) != 0) {
        echo_off = 0;
        ret = ck_error_set(CK_ERR_IO, "terminal: cannot turn echo off");
    } else {
        fputs(prompt, stderr);
        fflush(stderr);
        ret = read_line(buf, len);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
        echo_off = 0;
    }
    fputc('\n', stderr);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    sigaction(SIGTSTP, &old_tstp, NULL);
    return ret;
}

int
cli_read_password(const char *name, char **pw, size_t *len)
{
    char *buf = malloc(CLI_PASSWORD_MAX + 2), *again = NULL;
    size_t n = 0, n2 = 0;
    char prompt[600];
    int ret;

    *pw = NULL;
    *len = 0;
    if (buf == NULL)
        return ck_error_set(CK_ERR_NOMEM, "password");
    if (isatty(STDIN_FILENO)) {
        snprintf(prompt, sizeof(prompt), "Password for %s: ", name);
        if ((ret = read_noecho(prompt, buf, &n)) != 0)
            goto out;
        if (n > 0) {
            if ((again = malloc(CLI_PASSWORD_MAX + 2)) == NULL) {
                ret = ck_error_set(CK_ERR_NOMEM, "password");
                goto out;
            }
            snprintf(prompt, sizeof(prompt), "Enter it again: ");
            if ((ret = read_noecho(prompt, again, &n2)) != 0)
                goto out;
            if (n2 != n || !ck_ct_equal(buf, again, n)) {
                ret = ck_error_set(CK_ERR_INVAL, "the passwords do not match; nothing changed");
                goto out;
            }
        }
    } else if ((ret = read_line(buf, &n)) != 0) {
        goto out;
    }
    if (n == 0) {
        ret = ck_error_set(CK_ERR_INVAL, "empty password");
        goto out;
    }
    /* Shrink to the exact size so cli_password_free knows what to wipe. */
    if ((*pw = ck_memdup(buf, n + 1)) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "password");
        goto out;
    }
    *len = n;
    ret = 0;
out:
    ck_free_secret(buf, CLI_PASSWORD_MAX + 2);
    if (again != NULL)
        ck_free_secret(again, CLI_PASSWORD_MAX + 2);
    return ret;
}

int
cli_confirm(const char *what, bool yes, const char *question)
{
    char line[16];

    if (yes)
        return CLI_OK;
    if (!isatty(STDIN_FILENO))
        return cli_usage_error(what, "standard input is not a terminal: add --yes to confirm");
    fprintf(stderr, "%s (yes/no): ", question);
    fflush(stderr);
    if (fgets(line, sizeof(line), stdin) == NULL || strcmp(line, "yes\n") != 0) {
        fprintf(stderr, "cablekey: %s: not confirmed; nothing changed\n", what);
        return CLI_FAIL;
    }
    return CLI_OK;
}
