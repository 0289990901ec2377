/*
 * gsstool: one Kerberos V5 GSS-API context driven by MIT's libgssapi_krb5,
 * for the tests of auth/kerberos to check iked's tokens against the
 * reference implementation (the one racoon uses). Built by the test with
 * gcc; never shipped.
 *
 * One command per line on stdin, one answer per line on stdout; tokens and
 * messages in hex:
 *   init NAME        -> "token HEX"   gss_init_sec_context towards the krb5
 *                                     principal NAME (mutual, sequence, conf, integ)
 *   step HEX         -> "complete" | "token HEX"   continue the initiator
 *   accept HEX       -> "token HEX client NAME" | "complete client NAME"
 *   wrap HEX         -> "token HEX"   gss_wrap with confidentiality
 *   wrapi HEX        -> "token HEX"   gss_wrap, integrity only
 *   unwrap HEX       -> "msg HEX conf N"  (an empty HEX is "-")
 *   keys             -> "keys PROTO ENCTYPE HEX [ACCEPTOR_ENCTYPE HEX]"
 *                        (exports the lucid context: the context ends)
 * Failures answer "error TEXT" (the GSS and mechanism status strings).
 * Credentials come from the environment: KRB5_CONFIG, KRB5_KTNAME for the
 * acceptor, KRB5_CLIENT_KTNAME / KRB5CCNAME for the initiator.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>

static gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;

static void status_line(const char *what, OM_uint32 maj, OM_uint32 min)
{
	OM_uint32 m, mc = 0;
	gss_buffer_desc s;
	printf("error %s:", what);
	do {
		gss_display_status(&m, maj, GSS_C_GSS_CODE, GSS_C_NO_OID, &mc, &s);
		printf(" %.*s;", (int)s.length, (char *)s.value);
		gss_release_buffer(&m, &s);
	} while (mc != 0);
	do {
		gss_display_status(&m, min, GSS_C_MECH_CODE, GSS_C_NO_OID, &mc, &s);
		printf(" %.*s;", (int)s.length, (char *)s.value);
		gss_release_buffer(&m, &s);
	} while (mc != 0);
	printf("\n");
}

static void put_hex(const void *p, size_t n)
{
	const unsigned char *b = p;
	if (n == 0)
		printf("-");
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
}

static int get_hex(const char *s, gss_buffer_desc *out)
{
	size_t n = strlen(s);
	if (n % 2)
		return -1;
	out->length = n / 2;
	out->value = malloc(out->length + 1);
	for (size_t i = 0; i < out->length; i++) {
		unsigned int c;
		if (sscanf(s + 2 * i, "%2x", &c) != 1)
			return -1;
		((unsigned char *)out->value)[i] = c;
	}
	return 0;
}

static void token_out(gss_buffer_desc *t)
{
	OM_uint32 m;
	printf("token ");
	put_hex(t->value, t->length);
	gss_release_buffer(&m, t);
}

static void print_key(gss_krb5_lucid_key_t *k)
{
	printf(" %u ", k->type);
	put_hex(k->data, k->length);
}

int main(void)
{
	char line[65536];
	gss_name_t target = GSS_C_NO_NAME;
	OM_uint32 req = GSS_C_MUTUAL_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof line, stdin) != NULL) {
		OM_uint32 maj, min;
		gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER;
		char *arg;

		line[strcspn(line, "\r\n")] = 0;
		arg = strchr(line, ' ');
		if (arg != NULL)
			*arg++ = 0;
		if (arg != NULL && strcmp(line, "init") != 0 && get_hex(arg, &in) < 0) {
			printf("error bad hex\n");
			continue;
		}
		if (strcmp(line, "init") == 0 || strcmp(line, "step") == 0) {
			if (strcmp(line, "init") == 0) {
				gss_buffer_desc nb = { strlen(arg), arg };
				maj = gss_import_name(&min, &nb, (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME, &target);
				if (GSS_ERROR(maj)) {
					status_line("import_name", maj, min);
					continue;
				}
			}
			maj = gss_init_sec_context(&min, GSS_C_NO_CREDENTIAL, &ctx, target,
			    (gss_OID)gss_mech_krb5, req, 0, GSS_C_NO_CHANNEL_BINDINGS,
			    &in, NULL, &out, NULL, NULL);
			if (GSS_ERROR(maj)) {
				status_line("init_sec_context", maj, min);
				continue;
			}
			if (out.length > 0)
				token_out(&out);
			else
				printf("complete");
			printf("\n");
		} else if (strcmp(line, "accept") == 0) {
			gss_name_t client;
			gss_buffer_desc nm;
			maj = gss_accept_sec_context(&min, &ctx, GSS_C_NO_CREDENTIAL, &in,
			    GSS_C_NO_CHANNEL_BINDINGS, &client, NULL, &out, NULL, NULL, NULL);
			if (GSS_ERROR(maj)) {
				if (out.length > 0) {
					token_out(&out);
					printf(" ");
				}
				status_line("accept_sec_context", maj, min);
				continue;
			}
			if (out.length > 0)
				token_out(&out);
			else
				printf("complete");
			gss_display_name(&min, client, &nm, NULL);
			printf(" client %.*s\n", (int)nm.length, (char *)nm.value);
		} else if (strcmp(line, "wrap") == 0 || strcmp(line, "wrapi") == 0) {
			maj = gss_wrap(&min, ctx, strcmp(line, "wrap") == 0, GSS_C_QOP_DEFAULT, &in, NULL, &out);
			if (GSS_ERROR(maj)) {
				status_line("wrap", maj, min);
				continue;
			}
			token_out(&out);
			printf("\n");
		} else if (strcmp(line, "unwrap") == 0) {
			int conf = 0;
			maj = gss_unwrap(&min, ctx, &in, &out, &conf, NULL);
			if (GSS_ERROR(maj)) {
				status_line("unwrap", maj, min);
				continue;
			}
			printf("msg ");
			put_hex(out.value, out.length);
			printf(" conf %d\n", conf);
		} else if (strcmp(line, "keys") == 0) {
			void *lp;
			gss_krb5_lucid_context_v1_t *l;
			maj = gss_krb5_export_lucid_sec_context(&min, &ctx, 1, &lp);
			if (GSS_ERROR(maj)) {
				status_line("export_lucid", maj, min);
				continue;
			}
			l = lp;
			printf("keys %u", l->protocol);
			if (l->protocol == 0) {
				print_key(&l->rfc1964_kd.ctx_key);
			} else {
				print_key(&l->cfx_kd.ctx_key);
				if (l->cfx_kd.have_acceptor_subkey)
					print_key(&l->cfx_kd.acceptor_subkey);
			}
			printf("\n");
			gss_krb5_free_lucid_sec_context(&min, lp);
		} else {
			printf("error unknown command %s\n", line);
		}
		free(in.value);
	}
	return 0;
}
