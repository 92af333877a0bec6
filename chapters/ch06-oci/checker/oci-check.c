/*
 * oci-check: what a process sees of itself, one `key=value` per line — the container-side half
 * of chapter 6's conformance tests, in the manner of the OCI runtime-tools validation suite.
 *
 * Static, dependency-free C (built by ch06's build.rs with the host's gcc), so that it runs in
 * any root filesystem, busybox's included. Arguments ask for more:
 *   read:PATH    can PATH be opened for reading?      -> read:PATH=ok | errno name
 *   write:PATH   can PATH be opened for writing?      -> write:PATH=ok | errno name
 *   file:PATH    the first line of PATH               -> file:PATH=<line> | errno name
 *   mkdir:PATH   mkdir(PATH)                          -> mkdir:PATH=ok | errno name
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

extern char **environ;

static const char *errno_name(int e) {
    switch (e) {
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EROFS: return "EROFS";
    case ENOENT: return "ENOENT";
    case EISDIR: return "EISDIR";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    case EEXIST: return "EEXIST";
    default: return "EOTHER";
    }
}

static void status_lines(void) {
    /* Capability sets, no_new_privs and the seccomp mode, as the kernel reports them. */
    static const char *keys[] = {"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:",
                                 "NoNewPrivs:", "Seccomp:", NULL};
    FILE *f = fopen("/proc/self/status", "r");
    char line[512];
    if (!f) {
        printf("status=%s\n", errno_name(errno));
        return;
    }
    while (fgets(line, sizeof line, f)) {
        for (int i = 0; keys[i]; i++) {
            size_t n = strlen(keys[i]);
            if (strncmp(line, keys[i], n) == 0) {
                char *value = line + n;
                while (*value == ' ' || *value == '\t') value++;
                value[strcspn(value, "\n")] = 0;
                printf("%.*s=%s\n", (int)(n - 1), keys[i], value);
            }
        }
    }
    fclose(f);
}

static void namespaces(void) {
    static const char *kinds[] = {"pid", "net", "ipc", "uts", "mnt", "cgroup", "user", NULL};
    char path[64], link[128];
    for (int i = 0; kinds[i]; i++) {
        snprintf(path, sizeof path, "/proc/self/ns/%s", kinds[i]);
        ssize_t n = readlink(path, link, sizeof link - 1);
        link[n > 0 ? n : 0] = 0;
        printf("ns.%s=%s\n", kinds[i], n > 0 ? link : errno_name(errno));
    }
}

static void mounts(void) {
    /* mountinfo: "id parent major:minor root mountpoint options - fstype source superopts" */
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[1024];
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        char mountpoint[512], options[256], fstype[64];
        char *dash = strstr(line, " - ");
        if (sscanf(line, "%*s %*s %*s %*s %511s %255s", mountpoint, options) != 2 || !dash)
            continue;
        if (sscanf(dash + 3, "%63s", fstype) != 1) continue;
        printf("mount=%s %s %s\n", mountpoint, fstype, options);
    }
    fclose(f);
}

static void probe(const char *arg) {
    const char *path = strchr(arg, ':') + 1;
    int ok = 0, fd;
    if (strncmp(arg, "read:", 5) == 0) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ok = fd >= 0;
    } else if (strncmp(arg, "write:", 6) == 0) {
        fd = open(path, O_WRONLY | O_CLOEXEC);
        ok = fd >= 0;
    } else if (strncmp(arg, "mkdir:", 6) == 0) {
        fd = -1;
        ok = mkdir(path, 0755) == 0;
    } else if (strncmp(arg, "file:", 5) == 0) {
        FILE *f = fopen(path, "r");
        char line[512] = "";
        if (!f) {
            printf("%s=%s\n", arg, errno_name(errno));
            return;
        }
        if (fgets(line, sizeof line, f)) line[strcspn(line, "\n")] = 0;
        fclose(f);
        printf("%s=%s\n", arg, line);
        return;
    } else {
        printf("%s=unknown probe\n", arg);
        return;
    }
    int saved = errno;
    if (fd >= 0) close(fd);
    printf("%s=%s\n", arg, ok ? "ok" : errno_name(saved));
}

int main(int argc, char **argv) {
    struct utsname uts;
    struct rlimit nofile;
    char cwd[PATH_MAX];
    gid_t groups[64];
    mode_t mask = umask(0);
    umask(mask);

    printf("pid=%d\n", (int)getpid());
    printf("uid=%d\ngid=%d\n", (int)getuid(), (int)getgid());
    int n = getgroups(64, groups);
    printf("groups=");
    for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", (int)groups[i]);
    printf("\n");
    printf("umask=%04o\n", (unsigned)mask);
    if (uname(&uts) == 0) printf("hostname=%s\n", uts.nodename);
    if (getcwd(cwd, sizeof cwd)) printf("cwd=%s\n", cwd);
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0)
        printf("rlimit.nofile=%llu %llu\n", (unsigned long long)nofile.rlim_cur,
               (unsigned long long)nofile.rlim_max);
    /* Descriptors beyond stdio: a runtime must leak none into the container. */
    int open_fds = 0;
    for (int fd = 3; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) != -1) open_fds++;
    printf("fds.extra=%d\n", open_fds);
    for (char **e = environ; *e; e++) printf("env.%s\n", *e);
    status_lines();
    namespaces();
    mounts();
    for (int i = 1; i < argc; i++) probe(argv[i]);
    return 0;
}
