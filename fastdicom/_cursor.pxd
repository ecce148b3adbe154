# Inline, bounds-agnostic byte readers and I/O helpers shared by the Cython modules
# (_scan, _batch, _series).  Callers check that the bytes they read are inside their buffer.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int64_t
from libc.errno cimport errno, EINTR

# open, openat, pread and close of the Cython readers (never with O_CREAT: no mode argument)
# as plain system calls on 64-bit Linux: glibc's wrappers of these cancellation points switch
# thread cancellation on and off around each call in a threaded process (~0.07 us per file
# of a scan; Python never cancels a thread).  Elsewhere, libc's functions.
cdef extern from *:
    """
    #include <fcntl.h>
    #include <unistd.h>
    #if defined(__linux__) && defined(__LP64__)
    #include <sys/syscall.h>
    static inline ssize_t fd_pread(int fd, void* buf, size_t n, long off) {
        return (ssize_t)syscall(SYS_pread64, fd, buf, n, off);
    }
    static inline int fd_close(int fd) { return (int)syscall(SYS_close, fd); }
    static inline int fd_openat(int dirfd, const char* path, int flags) {
        return (int)syscall(SYS_openat, dirfd, path, flags);
    }
    #else
    static inline ssize_t fd_pread(int fd, void* buf, size_t n, long off) {
        return pread(fd, buf, n, off);
    }
    static inline int fd_close(int fd) { return close(fd); }
    static inline int fd_openat(int dirfd, const char* path, int flags) {
        return openat(dirfd, path, flags);
    }
    #endif
    static inline int fd_open(const char* path, int flags) {
        return fd_openat(AT_FDCWD, path, flags);
    }
    """
    ssize_t pread "fd_pread"(int fd, void* buf, size_t count, long offset) nogil
    int close "fd_close"(int fd) nogil
    int c_open "fd_open"(const char* path, int flags) nogil
    int c_openat "fd_openat"(int dirfd, const char* path, int flags) nogil

cdef extern from "<fcntl.h>" nogil:
    int O_RDONLY
    int O_CLOEXEC
    int O_NOFOLLOW
    int O_NONBLOCK
    int O_DIRECTORY

cdef extern from "<sys/stat.h>" nogil:
    cdef struct timespec_t "timespec":
        long tv_sec
        long tv_nsec
    cdef struct stat_t "stat":
        long st_size
        unsigned int st_mode
        timespec_t st_mtim
    int fstat(int fd, stat_t* buf)
    int c_stat "stat"(const char* path, stat_t* buf)
    int c_lstat "lstat"(const char* path, stat_t* buf)


cdef inline uint16_t rd16(const uint8_t* p, bint le) noexcept nogil:
    if le:
        return <uint16_t>(p[0] | (<uint16_t>p[1] << 8))
    return <uint16_t>((<uint16_t>p[0] << 8) | p[1])


cdef inline uint32_t rd32(const uint8_t* p, bint le) noexcept nogil:
    if le:
        return (<uint32_t>p[0]) | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)
    return (<uint32_t>p[3]) | (<uint32_t>p[2] << 8) | (<uint32_t>p[1] << 16) | (<uint32_t>p[0] << 24)


cdef inline uint32_t rdtag(const uint8_t* p, bint le) noexcept nogil:
    return (<uint32_t>rd16(p, le) << 16) | rd16(p + 2, le)


cdef inline bint is_upper(uint8_t c) noexcept nogil:
    return 0x41 <= c <= 0x5A


cdef inline bint is_long_vr(uint8_t a, uint8_t b) noexcept nogil:
    """VRs with a reserved field and a 32-bit length in explicit VR (PS3.5 7.1.2)."""
    if a == b'O':
        return b == b'B' or b == b'D' or b == b'F' or b == b'L' or b == b'V' or b == b'W'
    if a == b'U':
        return b == b'C' or b == b'N' or b == b'R' or b == b'T' or b == b'V'
    if a == b'S':
        return b == b'Q' or b == b'V'
    return False


cdef inline bint is_known_vr(uint16_t vr) noexcept nogil:
    """A VR of PS3.5 Table 6.2-1 (first byte in the high byte).  A fast walk that meets any
    other VR leaves the file to the general reader, which reads that element as implicit VR."""
    cdef uint8_t a = vr >> 8, b = vr & 0xFF
    if a == b'A':
        return b == b'E' or b == b'S' or b == b'T'
    if a == b'C':
        return b == b'S'
    if a == b'D':
        return b == b'A' or b == b'S' or b == b'T'
    if a == b'F':
        return b == b'L' or b == b'D'
    if a == b'I':
        return b == b'S'
    if a == b'L':
        return b == b'O' or b == b'T'
    if a == b'O':
        return b == b'B' or b == b'D' or b == b'F' or b == b'L' or b == b'V' or b == b'W'
    if a == b'P':
        return b == b'N'
    if a == b'S':
        return b == b'H' or b == b'L' or b == b'Q' or b == b'S' or b == b'T' or b == b'V'
    if a == b'T':
        return b == b'M'
    if a == b'U':
        return b == b'C' or b == b'I' or b == b'L' or b == b'N' or b == b'R' or b == b'S' or b == b'T' or b == b'V'
    return False


cdef inline int pread_full(int fd, void* dst, int64_t count, int64_t offset,
                           int64_t* got) noexcept nogil:
    """pread until ``count`` bytes, EOF or an error; returns 0 or errno, ``got`` = bytes read."""
    cdef ssize_t r
    cdef int64_t done = 0
    while done < count:
        r = pread(fd, <char*>dst + done, <size_t>(count - done), <long>(offset + done))
        if r < 0:
            if errno == EINTR:
                continue
            got[0] = done
            return errno
        if r == 0:
            break
        done += r
    got[0] = done
    return 0


cdef inline bytes c_path(object path):
    """``path`` (str or bytes-like) as the bytes of a C string; ValueError for a NUL byte,
    as ``open`` gives (the string would end there and name another file)."""
    cdef bytes b = (<str>path).encode("utf-8", "surrogateescape") if isinstance(path, str) \
        else bytes(path)
    if b"\0" in b:
        raise ValueError("embedded null byte")
    return b


cdef inline int open_regular(bytes bpath, int extra_flags, stat_t* sb, object path) except -1:
    """open(O_RDONLY | O_CLOEXEC | extra_flags) + fstat: the descriptor of a regular file, or
    OSError / IsADirectoryError (naming ``path``) with nothing left open.  O_NONBLOCK: a fifo
    must not block the open (reads of regular files ignore the flag)."""
    cdef const char* cpath = bpath
    cdef int fd, err
    with nogil:
        fd = c_open(cpath, O_RDONLY | O_CLOEXEC | O_NONBLOCK | extra_flags)
    if fd < 0:
        err = errno
        import os
        raise OSError(err, os.strerror(err), path)
    if fstat(fd, sb) != 0:
        err = errno
        close(fd)
        import os
        raise OSError(err, os.strerror(err), path)
    if (sb.st_mode & 0o170000) != 0o100000:
        close(fd)
        raise IsADirectoryError(21, "not a regular file", path)
    return fd
