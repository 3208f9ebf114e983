/* peer/portmap/soap.h - SOAP calls to a WANIPConnection / WANPPPConnection service:
 * build the request (body and the exact extra headers), parse the response
 * or the fault. Pure; parsing goes through expat.
 *
 * Request, as strict routers want it:
 *   POST <control path> HTTP/1.1            (the shell's HTTP client)
 *   SOAPAction: "urn:...:WANIPConnection:2#AddPortMapping"   <- quoted
 *   Content-Type: text/xml; charset="utf-8"
 *   Expect:                                  <- empty: no 100-continue
 *   <?xml version="1.0"?>
 *   <s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
 *    s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>
 *   <u:AddPortMapping xmlns:u="SERVICE-TYPE"><NewRemoteHost></NewRemoteHost>
 *   ... arguments in the order of the service description ...
 *   </u:AddPortMapping></s:Body></s:Envelope>
 * Every argument value is XML-escaped.
 *
 * Fault (HTTP 500):
 *   <s:Fault>...<detail><UPnPError><errorCode>718</errorCode>
 *   <errorDescription>ConflictInMappingEntry</errorDescription>
 * MikroTik capitalises differently and pads the number with whitespace;
 * some routers send non-standard codes such as -911. */
#ifndef NB_PEER_SOAP_H
#define NB_PEER_SOAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum nb_soap_action {
	NB_SOAP_GET_EXTERNAL_IP = 0, /* GetExternalIPAddress */
	NB_SOAP_ADD_PORT_MAPPING,    /* AddPortMapping */
	NB_SOAP_ADD_ANY_PORT_MAPPING,/* AddAnyPortMapping (WANIPConnection:2) */
	NB_SOAP_DELETE_PORT_MAPPING, /* DeletePortMapping */
	NB_SOAP_GET_SPECIFIC_ENTRY,  /* GetSpecificPortMappingEntry */
	NB_SOAP_ACTION_COUNT,
};

/* "GetExternalIPAddress", ...; NULL when out of range. */
const char *nb_soap_action_name(enum nb_soap_action a);

/* The arguments; which ones an action sends follows the IGD spec. */
struct nb_soap_args {
	uint16_t external_port;  /* 0 only for GetExternalIPAddress */
	bool tcp;                /* NewProtocol "TCP", else "UDP" (always upper case) */
	uint16_t internal_port;
	char internal_client[16];/* dotted IPv4: the local address of the connection to the router */
	char description[64];    /* NewPortMappingDescription: non-empty */
	uint32_t lease_s;        /* NewLeaseDuration; 0 asks for a permanent mapping */
};

#define NB_SOAP_REQ_BODY_MAX 2048
#define NB_SOAP_HEADERS 3

struct nb_soap_request {
	/* NUL-terminated header lines, as curl takes them: SOAPAction,
	 * Content-Type, and the empty "Expect:". */
	char headers[NB_SOAP_HEADERS][192];
	char body[NB_SOAP_REQ_BODY_MAX];
	size_t body_len;
};

/* Build the call. service_type is the description's (1..128 bytes, no
 * characters that need escaping in a header). 0, or -EINVAL (bad arguments:
 * empty description, port 0 where one is needed, bad client address) or
 * -ENOSPC. *ret untouched on failure. */
int nb_soap_build(enum nb_soap_action a, const char *service_type, const struct nb_soap_args *args,
		  struct nb_soap_request *ret);

/* A response body longer than this is not read further: the shell aborts the
 * transfer (curl 7.88 enforces CURLOPT_MAXFILESIZE only up front). */
#define NB_SOAP_RESPONSE_MAX (16 * 1024)

struct nb_soap_response {
	bool fault;             /* the router answered with a UPnP fault */
	bool code_known;        /* fault: errorCode was an integer */
	int code;               /* fault: the UPnP errorCode (402, 501, 606, 714, 718, 725, ...; may be negative) */
	char description[129];  /* fault: errorDescription, may be empty; longer values are cut here (for display only) */
	/* success, by action */
	char external_ip[16];   /* GetExternalIPAddress: NewExternalIPAddress; "" when the router sent it empty */
	uint16_t reserved_port; /* AddAnyPortMapping: NewReservedPort */
	uint16_t internal_port; /* GetSpecificPortMappingEntry */
	char internal_client[16];
	bool enabled;
	uint32_t lease_s;
};

/* Parse the answer to action `a`: HTTP status and body. Returns 0 when it is
 * either the action's response (HTTP 200) or a UPnP fault (HTTP 500 with a
 * SOAP Fault; see fault/code_known/code); -EINVAL with *why otherwise (not
 * XML, HTML, a 200 without the <ActionResponse>, a value that does not fit,
 * an external IP that is not dotted IPv4 or empty, a DOCTYPE, caps exceeded).
 * *ret untouched on failure. */
int nb_soap_parse(enum nb_soap_action a, int http_status, const uint8_t *body, size_t len,
		  struct nb_soap_response *ret, const char **why);

#endif
