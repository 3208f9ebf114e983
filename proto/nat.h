/* proto/nat.h - derived NAT names. The broker and the peer store mapping and
 * filtering (RFC 4787); the classic RFC 3489 name is derived, for display. */
#ifndef NB_PROTO_NAT_H
#define NB_PROTO_NAT_H

#include <stdbool.h>

#include "proto/ctrl.h"

enum nb_nat_type nb_nat_type_of(enum nb_mapping m, enum nb_filtering f, bool udp_blocked);

#endif
