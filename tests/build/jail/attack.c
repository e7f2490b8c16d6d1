/* Escape attempts run as a RUN command inside the build jail (tests/build/test_jail.py).
 * Compiled static so it runs in a busybox image.  Each attempt prints one line,
 * "<attempt>: denied (<errno text>)" when the kernel refused it or "<attempt>: ESCAPED ..."
 * when it worked; the tests assert on those lines. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int report(const char *what, int ok, const char *detail) {
    if (ok) printf("%s: ESCAPED %s\n", what, detail ? detail : "");
    else printf("%s: denied (%s)\n", what, strerror(errno));
    fflush(stdout);
    return ok;
}

static void try_read(const char *what, const char *path) {
    char buf[256] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) { report(what, 0, NULL); return; }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) { report(what, 0, NULL); return; }
    report(what, 1, buf);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "read")) {               /* read PATH...: by path, /proc/1/root, ../.. */
        for (int i = 2; i < argc; i++) try_read(argv[i], argv[i]);
    } else if (!strcmp(cmd, "chroot")) {      /* chroot SECRET: the classic chroot escape */
        mkdir("/escape", 0755);
        int fd = open("/", O_RDONLY | O_DIRECTORY);
        if (chroot("/escape") != 0) { report("chroot", 0, NULL); return 0; }
        if (fchdir(fd) != 0) { report("fchdir", 0, NULL); return 0; }
        for (int i = 0; i < 100; i++) chdir("..");
        if (chroot(".") != 0) { report("chroot .", 0, NULL); return 0; }
        try_read("chroot escape", argv[2]);
    } else if (!strcmp(cmd, "pivot")) {       /* back to the host's root */
        errno = 0;
        report("pivot_root", syscall(SYS_pivot_root, "/", "/") == 0, "pivot_root");
        report("umount /", umount2("/", MNT_DETACH) == 0, "umount /");
        int ns = open("/proc/1/ns/mnt", O_RDONLY);
        report("setns", ns >= 0 && setns(ns, 0) == 0, "setns");
        report("unshare user", unshare(CLONE_NEWUSER) == 0, "unshare");
        report("unshare mount", unshare(CLONE_NEWNS) == 0, "unshare");
    } else if (!strcmp(cmd, "mount")) {       /* mount MAJOR MINOR: the host's disk */
        dev_t dev = makedev(atoi(argv[2]), atoi(argv[3]));
        mkdir("/mnt", 0755);
        report("mknod disk", mknod("/disk", S_IFBLK | 0600, dev) == 0, "mknod");
        report("mount disk", mount("/disk", "/mnt", "ext4", MS_RDONLY, NULL) == 0, "mount");
        report("mount /dev/vda", mount("/dev/vda", "/mnt", "ext4", MS_RDONLY, NULL) == 0,
               "mount");
        report("mount proc", mount("proc", "/mnt", "proc", 0, NULL) == 0, "mount");
        report("mount tmpfs", mount("tmpfs", "/mnt", "tmpfs", 0, NULL) == 0, "mount");
    } else if (!strcmp(cmd, "signal")) {      /* signal PID: the server's pid on the host */
        int pid = atoi(argv[2]);
        report("kill server", kill(pid, SIGKILL) == 0, "kill");
        report("ptrace server", ptrace(PTRACE_ATTACH, pid, 0, 0) == 0, "ptrace");
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/environ", pid);
        try_read("proc of server", path);
        report("ptrace init", ptrace(PTRACE_ATTACH, 1, 0, 0) == 0, "ptrace");
        try_read("proc of init", "/proc/1/environ");
    } else if (!strcmp(cmd, "forkbomb")) {    /* fork until refused; children wait */
        int n = 0;
        for (;;) {
            pid_t pid = fork();
            if (pid == 0) { pause(); _exit(0); }
            if (pid < 0) break;
            n++;
            if (n > 100000) break;
        }
        printf("forkbomb: stopped after %d (%s)\n", n, strerror(errno));
        fflush(stdout);
        kill(-1, SIGKILL);
    } else if (!strcmp(cmd, "memory")) {      /* memory MB: touch that much */
        long mb = atol(argv[2]);
        for (long i = 0; i < mb; i++) {
            char *p = malloc(1 << 20);
            if (!p) { report("malloc", 0, NULL); return 1; }
            memset(p, 1, 1 << 20);
        }
        printf("memory: ESCAPED touched %ld MiB\n", mb);
    } else if (!strcmp(cmd, "id")) {          /* what the jail's root is, from /proc */
        try_read("uid_map", "/proc/self/uid_map");
        try_read("status", "/proc/self/status");
    }
    return 0;
}
