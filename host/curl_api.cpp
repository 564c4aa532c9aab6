// curl_api.cpp: dlopen libcurl on first use (see curl_api.h for why).
#include "curl_api.h"

#include <dlfcn.h>

#include <string>

#include "error.h"

namespace rusca {

namespace {

const std::string kNeedsCurl =
    "the external judge (--judge-url) needs libcurl: install libcurl4 (the Debian package; libcurl4t64 on Ubuntu 24.04)";

template <class Fn>
void load_symbol(void* lib, const char* library, const char* name, Fn& fn) {
    fn = reinterpret_cast<Fn>(dlsym(lib, name));
    if (!fn) {
        dlclose(lib);
        throw Error(kNeedsCurl + ": " + library + " has no " + name + " (not libcurl, or too old: rusca needs 7.66 or newer)");
    }
}

}  // namespace

CurlApi load_curl_api(const char* library) {
    void* lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);  // never closed: libcurl lives with the process
    if (!lib) {
        const char* why = dlerror();
        throw Error(kNeedsCurl + " (" + (why ? why : library) + ")");
    }
    CurlApi api;
    load_symbol(lib, library, "curl_global_init", api.global_init);
    load_symbol(lib, library, "curl_easy_strerror", api.easy_strerror);
    load_symbol(lib, library, "curl_easy_init", api.easy_init);
    load_symbol(lib, library, "curl_easy_setopt", api.easy_setopt);
    load_symbol(lib, library, "curl_easy_getinfo", api.easy_getinfo);
    load_symbol(lib, library, "curl_easy_perform", api.easy_perform);
    load_symbol(lib, library, "curl_easy_cleanup", api.easy_cleanup);
    load_symbol(lib, library, "curl_slist_append", api.slist_append);
    load_symbol(lib, library, "curl_slist_free_all", api.slist_free_all);
    load_symbol(lib, library, "curl_multi_init", api.multi_init);
    load_symbol(lib, library, "curl_multi_setopt", api.multi_setopt);
    load_symbol(lib, library, "curl_multi_add_handle", api.multi_add_handle);
    load_symbol(lib, library, "curl_multi_remove_handle", api.multi_remove_handle);
    load_symbol(lib, library, "curl_multi_perform", api.multi_perform);
    load_symbol(lib, library, "curl_multi_info_read", api.multi_info_read);
    load_symbol(lib, library, "curl_multi_poll", api.multi_poll);  // libcurl 7.66
    load_symbol(lib, library, "curl_multi_cleanup", api.multi_cleanup);
    return api;
}

const CurlApi& curl_api() {
    // A function-local static: initialised once even when threads race; an exception leaves it
    // uninitialised, so the next call reports the missing library again.
    static const CurlApi api = [] {
        CurlApi a = load_curl_api("libcurl.so.4");
        const CURLcode code = a.global_init(CURL_GLOBAL_DEFAULT);
        check(code == CURLE_OK, std::string("external judge: libcurl could not be initialised: ") + a.easy_strerror(code));
        return a;
    }();
    return api;
}

}  // namespace rusca
