/* The system's libmicrohttpd (Debian: libmicrohttpd-dev), with the headers it expects first. */
#include <stdint.h>
#include <stdarg.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <microhttpd.h>
