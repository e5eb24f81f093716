/* Per-connection wrappers for the hardening code (framing checks, deadlines, lingering close). */
#ifndef CMICROHTTPD_CONNECTION_SHIMS_H
#define CMICROHTTPD_CONNECTION_SHIMS_H
#include <microhttpd.h>

/* MHD_set_connection_option(connection, MHD_CONNECTION_OPTION_TIMEOUT, seconds); 0 means none. */
int cmhd_set_connection_timeout(struct MHD_Connection *_Nonnull connection, unsigned int seconds);

/* MHD_CONNECTION_INFO_SOCKET_CONTEXT: what the NOTIFY_CONNECTION callback stored; NULL if none. */
void *_Nullable cmhd_socket_context(struct MHD_Connection *_Nonnull connection);

/* MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE: bytes of the request line and headers as received; 0 if unknown. */
size_t cmhd_request_header_size(struct MHD_Connection *_Nonnull connection);

#endif
