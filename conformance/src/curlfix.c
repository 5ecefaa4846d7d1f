/*
 * curlfix.c - LD_PRELOAD shim that makes Debian bookworm's SyncEvolution 2.0.0 client
 * (package syncevolution 2.0.0-3+b1, libsyncevolution.so.0) usable over HTTP.
 *
 * WHAT IS BROKEN
 *   SyncEvo::CurlTransportAgent::CurlTransportAgent() registers its libcurl callbacks with
 *       curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, <callback>);   option 20011
 *       curl_easy_setopt(h, CURLOPT_READFUNCTION,  <callback>);   option 20012
 *   but in the Debian binary those two calls never load the variadic third argument
 *   (on x86-64 it travels in %rdx; the disassembly of the constructor shows
 *   `mov $0x4e2b,%esi; xor %eax,%eax; call curl_easy_setopt` with no write to %rdx, while
 *   the neighbouring CURLOPT_WRITEDATA/READDATA calls do `mov %rbx,%rdx`). libcurl thus
 *   stores whatever %rdx happened to hold, in practice NULL, and falls back to its default
 *   callbacks fwrite()/fread() on the "FILE *" it was given as WRITEDATA/READDATA, which
 *   is really the CurlTransportAgent object. The client crashes with SIGSEGV inside fread()
 *   as soon as it POSTs its first SyncML message.
 *
 * WHAT THIS SHIM DOES
 *   It defines curl_easy_setopt() itself (LD_PRELOAD puts it in front of libcurl). Every
 *   call is forwarded unchanged to the real function, except a WRITEFUNCTION or
 *   READFUNCTION option set by code inside libsyncevolution.so: there the value is
 *   replaced by a small C callback that does what upstream's callback does, namely call
 *   the exported member function
 *       size_t SyncEvo::CurlTransportAgent::writeData(void *buffer, size_t size)
 *       size_t SyncEvo::CurlTransportAgent::readData(void *buffer, size_t size)
 *   on the object libcurl passes back as its user pointer (the WRITEDATA/READDATA value,
 *   which libsyncevolution does set correctly to `this`). Nothing else is touched, and
 *   if those member functions cannot be found the call is passed through as is.
 *
 *   x86-64 Linux only (the mangled names use `m` = unsigned long for size_t).
 *
 * BUILD  cc -shared -fPIC -O2 -o curlfix.so curlfix.c -ldl
 * USE    LD_PRELOAD=/path/to/curlfix.so syncevolution --daemon=no --sync ...
 *
 * conformance::syncevolution embeds this file, builds it on demand and preloads it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

/* Just enough of <curl/curl.h> (whose headers need not be installed). */
typedef void CURL;
typedef int CURLcode;
typedef long long curl_off_t_like;
enum {
    OPT_LONG_BASE = 0,        /* CURLOPTTYPE_LONG:          value is a long          */
    OPT_OBJECT_BASE = 10000,  /* CURLOPTTYPE_OBJECTPOINT:   value is a data pointer  */
    OPT_FUNCTION_BASE = 20000,/* CURLOPTTYPE_FUNCTIONPOINT: value is a function      */
    OPT_OFF_T_BASE = 30000,   /* CURLOPTTYPE_OFF_T:         value is a curl_off_t    */
    OPT_BLOB_BASE = 40000,    /* CURLOPTTYPE_BLOB:          value is a struct pointer */
    OPT_WRITEFUNCTION = 20011,
    OPT_READFUNCTION = 20012
};

typedef CURLcode (*setopt_fn)(CURL *, int, ...);
typedef size_t (*member_io_fn)(void *self, void *buffer, size_t size);
typedef size_t (*curl_io_fn)(char *ptr, size_t size, size_t nmemb, void *userdata);

static setopt_fn real_setopt;
static member_io_fn agent_write_data; /* SyncEvo::CurlTransportAgent::writeData */
static member_io_fn agent_read_data;  /* SyncEvo::CurlTransportAgent::readData  */

static size_t forward_write(char *ptr, size_t size, size_t nmemb, void *agent)
{
    return agent_write_data(agent, ptr, size * nmemb);
}

static size_t forward_read(char *ptr, size_t size, size_t nmemb, void *agent)
{
    return agent_read_data(agent, ptr, size * nmemb);
}

/* True if `code` lies inside a shared object whose file name contains libsyncevolution.so. */
static int inside_libsyncevolution(const void *code)
{
    Dl_info where;
    if (!dladdr(code, &where) || !where.dli_fname)
        return 0;
    return strstr(where.dli_fname, "libsyncevolution.so") != NULL;
}

static void resolve_once(void)
{
    /* Idempotent lookups: a race between threads only repeats the same work. */
    if (!__atomic_load_n(&real_setopt, __ATOMIC_ACQUIRE)) {
        agent_write_data = (member_io_fn)dlsym(RTLD_DEFAULT,
            "_ZN7SyncEvo18CurlTransportAgent9writeDataEPvm");
        agent_read_data = (member_io_fn)dlsym(RTLD_DEFAULT,
            "_ZN7SyncEvo18CurlTransportAgent8readDataEPvm");
        __atomic_store_n(&real_setopt, (setopt_fn)dlsym(RTLD_NEXT, "curl_easy_setopt"),
                         __ATOMIC_RELEASE);
    }
}

CURLcode curl_easy_setopt(CURL *handle, int option, ...)
{
    const void *caller = __builtin_return_address(0);
    va_list ap;
    CURLcode rc;

    resolve_once();
    if (!real_setopt)
        return 48; /* CURLE_UNKNOWN_OPTION: there is no libcurl behind us */

    va_start(ap, option);
    if (option >= OPT_OFF_T_BASE && option < OPT_BLOB_BASE) {
        curl_off_t_like value = va_arg(ap, curl_off_t_like);
        rc = real_setopt(handle, option, value);
    } else if (option >= OPT_FUNCTION_BASE && option < OPT_OFF_T_BASE) {
        curl_io_fn value = va_arg(ap, curl_io_fn);
        if ((option == OPT_WRITEFUNCTION || option == OPT_READFUNCTION) &&
            agent_write_data && agent_read_data && inside_libsyncevolution(caller))
            value = option == OPT_WRITEFUNCTION ? forward_write : forward_read;
        rc = real_setopt(handle, option, value);
    } else if (option >= OPT_OBJECT_BASE) {
        void *value = va_arg(ap, void *);
        rc = real_setopt(handle, option, value);
    } else {
        long value = va_arg(ap, long);
        rc = real_setopt(handle, option, value);
    }
    va_end(ap);
    return rc;
}
