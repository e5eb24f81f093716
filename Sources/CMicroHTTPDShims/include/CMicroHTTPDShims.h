/* Fixed-arity wrappers for libmicrohttpd's variadic functions, which Swift cannot call,
 * and for macros Swift does not import. Every symbol is prefixed `cmhd_`. */
#ifndef CMICROHTTPD_SHIMS_H
#define CMICROHTTPD_SHIMS_H
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <microhttpd.h>

/* MHD_start_daemon(flags, 0, NULL, NULL, handler, handler_cls, MHD_OPTION_ARRAY, options, MHD_OPTION_END).
 * The port comes from MHD_OPTION_SOCK_ADDR in `options`. */
struct MHD_Daemon *_Nullable cmhd_start_daemon(unsigned int flags,
                                               MHD_AccessHandlerCallback _Nonnull handler,
                                               void *_Nullable handler_cls,
                                               const struct MHD_OptionItem *_Nonnull options);

/* MHD_DAEMON_INFO_BIND_PORT; 0 when unknown. */
uint16_t cmhd_bind_port(struct MHD_Daemon *_Nonnull daemon);

/* MHD_CONNECTION_INFO_CONNECTION_FD; -1 when unknown. */
int cmhd_connection_fd(struct MHD_Connection *_Nonnull connection);

/* The peer's address as "ip:port" (IPv6 as "[ip]:port") into `buffer`; 0 on success, -1 if unknown. */
int cmhd_client_address(struct MHD_Connection *_Nonnull connection, char *_Nonnull buffer, size_t length);

/* MHD_SIZE_UNKNOWN (UINT64_MAX) is not imported by Swift. */
static inline uint64_t cmhd_size_unknown(void) { return MHD_SIZE_UNKNOWN; }

#include "CMicroHTTPDConnectionShims.h"

#endif
