// curl_api.h: libcurl, loaded at run time (dlopen) the first time the external judge (--judge-url)
// needs it, so that build/rusca starts on machines without libcurl.so.4 (the GPU machine may lack
// it) and only --judge-url asks for it. Types, constants and prototypes still come from
// <curl/curl.h>; each pointer's type is decltype(&curl_...), so the compiler checks the signatures.
#pragma once
#include <curl/curl.h>

namespace rusca {

// The libcurl functions rusca calls (judge_http.cpp; easy_perform: the tests).
struct CurlApi {
    decltype(&curl_global_init) global_init = nullptr;
    decltype(&curl_easy_strerror) easy_strerror = nullptr;
    decltype(&curl_easy_init) easy_init = nullptr;
    decltype(&curl_easy_setopt) easy_setopt = nullptr;
    decltype(&curl_easy_getinfo) easy_getinfo = nullptr;
    decltype(&curl_easy_perform) easy_perform = nullptr;
    decltype(&curl_easy_cleanup) easy_cleanup = nullptr;
    decltype(&curl_slist_append) slist_append = nullptr;
    decltype(&curl_slist_free_all) slist_free_all = nullptr;
    decltype(&curl_multi_init) multi_init = nullptr;
    decltype(&curl_multi_setopt) multi_setopt = nullptr;
    decltype(&curl_multi_add_handle) multi_add_handle = nullptr;
    decltype(&curl_multi_remove_handle) multi_remove_handle = nullptr;
    decltype(&curl_multi_perform) multi_perform = nullptr;
    decltype(&curl_multi_info_read) multi_info_read = nullptr;
    decltype(&curl_multi_poll) multi_poll = nullptr;
    decltype(&curl_multi_cleanup) multi_cleanup = nullptr;
};

// libcurl.so.4, loaded and globally initialised once (thread-safe). Throws Error, saying which
// package to install, when the library or one of its functions is missing; a later call tries again.
const CurlApi& curl_api();

// Loads `library` (a file name for dlopen) and looks up every function of CurlApi, without
// initialising it. Throws Error as curl_api() does. Separate so that a test can name a library
// that is absent, or one that is not libcurl.
CurlApi load_curl_api(const char* library);

}  // namespace rusca
