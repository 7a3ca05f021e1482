/*
 * Unit tests of the policy module: the parser (every key's good and bad
 * values, sections, duplicates, limits, the unsupported table, the exact
 * "FILE:LINE: message" form), the pattern and version syntaxes,
 * inheritance and origins, the matchers, policy_write's round trip, the
 * embedded default and the permission checks.  Table-driven: one row per
 * case, with more rows that must fail than rows that must pass.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "policy.h"
#include "unit.h"

/* A client rule whose third line is the key under test. */
#define R "[r]\nconnect = :443\n"

#define HEX32 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define HEX20 "00112233445566778899aabbccddeeff00112233"
#define PIN32 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

static const char *const name = "t.conf";

/* --- parser rows ------------------------------------------------------ */

struct parse_row {
    const char *text;
    int ok;
    int line;        /* error line; 0 for the "FILE: message" form */
    const char *msg; /* expected part of the message */
};

static const struct parse_row parse_rows[] = {
    /* Layout, comments, quoting. */
    { "", 1, 0, NULL },
    { "# comment\n; another\n\n   \n", 1, 0, NULL },
    { "[global]\ndefault_action = plain\n", 1, 0, NULL },
    { "[r] # rule\nconnect = :443\n", 1, 0, NULL },
    { "  [ r ]  \n  connect=:443  \n", 1, 0, NULL },
    { R "action = tls # trailing comment\n", 1, 0, NULL },
    { R "action = \"tls\" # trailing comment\n", 1, 0, NULL },
    { R "action = \"tls\" ; trailing comment\n", 1, 0, NULL },
    { R "session_key = \"a \\\"b\\\" \\\\ c\"\n", 1, 0, NULL },
    { R "cipher_list = HIGH;x\n", 0, 3,
      "bad value \"HIGH;x\" for cipher_list" },
    { "[r]\r\nconnect = :443\r\n", 1, 0, NULL },
    { "\xef\xbb\xbf[r]\nconnect = :443\n", 1, 0, NULL },
    { "[r]\nconnect = :443", 1, 0, NULL },
    { "action = tls\n", 0, 1, "key action outside of any section" },
    { "\n\n[r\n", 0, 3, "missing ']' in section header" },
    { "[]\n", 0, 1, "empty section name" },
    { "[a b]\n", 0, 1, "bad section name \"a b\"" },
    { "[a/b]\n", 0, 1, "bad section name" },
    { "[r] junk\nconnect = :443\n", 0, 1, "junk after section header" },
    { R "just some words\n", 0, 3,
      "expected \"key = value\" or \"[section]\"" },
    { R "= tls\n", 0, 3, "missing key before '='" },
    { R "action =\n", 0, 3, "missing value for action" },
    { R "action =   # nothing\n", 0, 3, "missing value for action" },
    { R "action = \"tls\n", 0, 3, "missing closing '\"'" },
    { R "action = \"tls\" x\n", 0, 3, "junk after quoted value" },
    { R "session_key = \"a\\qb\"\n", 0, 3, "bad escape in quoted value" },
    { R "action = t\001ls\n", 0, 3, "control character (0x01)" },
    { R "action = tls\x7f\n", 0, 3, "control character (0x7f)" },
    { R "action = \"\"\n", 0, 3, "empty value for action" },

    /* Sections. */
    { "[r]\n", 0, 1, "rule [r] has neither connect nor listen" },
    { "[r]\naction = tls\n[s]\nconnect = :1\n", 0, 1, "rule [r] has neither" },
    { "[s]\nconnect = :1\n[r]\naction = deny\n", 0, 3, "rule [r] has neither" },
    { "[r]\nconnect = :1\n[r]\nconnect = :2\n", 0, 3,
      "duplicate section [r] (first on line 1)" },
    { "[global]\n[global]\n", 0, 2, "duplicate section [global]" },
    { "[defaults]\n[defaults]\n", 0, 2, "duplicate section [defaults]" },
    { "[global]\n[defaults]\n[listen-defaults]\n[r]\nconnect = :1\n", 1, 0,
      NULL },
    { "[r]\nconnect = :1\n[defaults]\nsecurity_level = 3\n", 1, 0, NULL },
    { R "action = tls\naction = deny\n", 0, 4,
      "duplicate key action in [r] (first set on line 3)" },
    { R "security_level = 1\n\nsecurity_level = 1\n", 0, 5,
      "duplicate key security_level" },
    { R "verfy_mode = peer\n", 0, 3, "unknown key \"verfy_mode\" in [r]" },
    { R "Action = tls\n", 0, 3, "unknown key \"Action\" in [r]" },
    { R "verify mode = peer\n", 0, 3, "unknown key \"verify mode\"" },
    { R "default_action = plain\n", 0, 3,
      "key default_action belongs in [global], not in [r]" },
    { "[defaults]\nkeylog = no\n", 0, 2, "belongs in [global]" },
    { "[global]\nverify_mode = peer\n", 0, 2, "rule setting" },
    { "[global]\nfoo = 1\n", 0, 2, "unknown key \"foo\" in [global]" },
    { "[defaults]\nconnect = :443\n", 0, 2,
      "key connect belongs in a rule, not in [defaults]" },
    { "[listen-defaults]\nlisten = :443\n", 0, 2,
      "key listen belongs in a rule, not in [listen-defaults]" },
    { "[defaults]\nhonor_cipher_order = yes\n", 0, 2, "[listen-defaults]" },
    { "[defaults]\nsni_cert = a.com /c /k\n", 0, 2, "[listen-defaults]" },
    { "[defaults]\nclient_ca_file = /c\n", 0, 2, "[listen-defaults]" },
    { "[listen-defaults]\nredirect = :8443\n", 0, 2, "use [defaults]" },
    { "[defaults]\nverify_mode = require\n", 0, 2,
      "verify_mode = require is for listen rules only" },
    { "[listen-defaults]\naction = auto\n", 0, 2,
      "action auto is for connect rules only" },
    { "[listen-defaults]\nverify_mode = require\n", 1, 0, NULL },
    { "[listen-defaults]\naction = deny\nhonor_cipher_order = no\n", 1, 0,
      NULL },
    { "[defaults]\naction = deny\n", 1, 0, NULL },
    { R "verify_mode = require\n", 0, 3,
      "verify_mode = require is for listen rules only, and [r] is a "
      "connect rule" },
    { R "honor_cipher_order = no\n", 0, 3,
      "key honor_cipher_order is for listen rules only" },
    { "[r]\nhonor_cipher_order = no\nconnect = :1\n", 0, 2,
      "for listen rules only" },
    { R "listen = :443\n", 0, 3, "rule [r] has both connect and listen" },
    { "[r]\nlisten = :443\n", 0, 1, "listen rule [r] needs cert_file" },
    { "[r]\nlisten = :443\ncert_file = /c\n", 1, 0, NULL },
    { "[r]\nlisten = :443\ncert_file = auto\nauto_ca_dir = /d\n", 1, 0,
      NULL },
    { "[r]\nlisten = :443\ncert_file = auto\n", 0, 3,
      "cert_file = auto needs auto_ca_dir" },
    { "[r]\nlisten = :443\ncert_file = auto\nauto_ca_dir = /d\n"
      "key_file = /k\n", 0, 5, "cert_file = auto makes its own key" },
    { "[r]\nlisten = :443\naction = deny\n", 1, 0, NULL },
    { "[r]\nlisten = :443\naction = plain\n", 1, 0, NULL },
    { "[r]\nlisten = www.example.com:443\n", 0, 2,
      "DNS name in listen pattern \"www.example.com:443\"" },
    { "[r]\nlisten = 10.0.0.1:443\nconnect = :1\n", 0, 3,
      "rule [r] has both connect and listen" },

    /* action */
    { R "action = tls\n", 1, 0, NULL },
    { R "action = auto\n", 1, 0, NULL },
    { R "action = plain\n", 1, 0, NULL },
    { R "action = DENY\n", 1, 0, NULL },
    { R "action = maybe\n", 0, 3, "bad value \"maybe\" for action" },
    { R "action = tls deny\n", 0, 3, "bad value \"tls deny\" for action" },
    { R "action = enforce\n", 1, 0, NULL },
    { R "action = enforce\nocsp_mode = must_staple\n", 1, 0, NULL },
    { R "action = enforce\nocsp_mode = try_staple|resolve|full_chain\n", 1,
      0, NULL },
    { R "action = enforce\nocsp_mode = no_staple|must_staple\n", 0, 4,
      "contradicts" },
    { R "action = enforce\nocsp_mode = try_staple\n", 1, 0, NULL },
    { R "action = audit\n", 1, 0, NULL },
    { "[r]\nlisten = :80\naction = audit\n", 1, 0, NULL },

    /* verify_mode */
    { R "verify_mode = none\n", 1, 0, NULL },
    { R "verify_mode = peer\n", 1, 0, NULL },
    { R "verify_mode = 0\n", 1, 0, NULL },
    { R "verify_mode = 1\n", 1, 0, NULL },
    { R "verify_mode = 2\n", 0, 3, "bad value \"2\" for verify_mode (want "
      "none, peer or require)" },
    { R "verify_mode = yes\n", 0, 3, "bad value \"yes\" for verify_mode" },

    /* ca_file, ca_path */
    { R "ca_file = /etc/ssl/ca.pem\n", 1, 0, NULL },
    { R "ca_file = system\n", 1, 0, NULL },
    { R "ca_path = /etc/ssl/certs\n", 1, 0, NULL },
    { R "ca_file = \"\"\n", 0, 3, "empty value for ca_file" },
    { R "ca_path = \"\"\n", 0, 3, "empty value for ca_path" },

    /* verifycn_scheme, verifycn_name, verifycn_publicsuffix */
    { R "verifycn_scheme = http\n", 1, 0, NULL },
    { R "verifycn_scheme = www\n", 1, 0, NULL },
    { R "verifycn_scheme = LDAP\n", 1, 0, NULL },
    { R "verifycn_scheme = none\n", 1, 0, NULL },
    { R "verifycn_scheme = htp\n", 0, 3, "bad value \"htp\" for "
      "verifycn_scheme" },
    { R "verifycn_scheme = http smtp\n", 0, 3, "for verifycn_scheme" },
    { R "verifycn_name = example.com\n", 1, 0, NULL },
    { R "verifycn_name = 10.0.0.1\n", 1, 0, NULL },
    { R "verifycn_name = ::1\n", 1, 0, NULL },
    { R "verifycn_name = [2001:db8::1]\n", 1, 0, NULL },
    { R "verifycn_name = *.example.com\n", 0, 3, "wildcard" },
    { R "verifycn_name = exa!mple.com\n", 0, 3, "bad character" },
    { R "verifycn_name = 10.0.0.300\n", 0, 3, "neither a DNS name nor" },
    { R "verifycn_publicsuffix = no\n", 1, 0, NULL },
    { R "verifycn_publicsuffix = TRUE\n", 1, 0, NULL },
    { R "verifycn_publicsuffix = 2\n", 0, 3, "(want yes or no)" },

    /* fingerprint */
    { R "fingerprint = sha256$" HEX32 "\n", 1, 0, NULL },
    { R "fingerprint = SHA256$" HEX32 "\n", 1, 0, NULL },
    { R "fingerprint = sha1$" HEX20 "\n", 1, 0, NULL },
    { R "fingerprint = sha1$00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
      "00:11:22:33\n", 1, 0, NULL },
    { R "fingerprint = sha1$" HEX20 ", sha256$" HEX32 "\n", 1, 0, NULL },
    { R "fingerprint = md5$00112233445566778899aabbccddeeff\n", 0, 3,
      "md5 fingerprints are too weak" },
    { R "fingerprint = sha256$" HEX20 "\n", 0, 3, "want 32 bytes of hex" },
    { R "fingerprint = sha1$" HEX32 "\n", 0, 3, "want 20 bytes of hex" },
    { R "fingerprint = sha3$" HEX32 "\n", 0, 3, "unknown fingerprint "
      "algorithm" },
    { R "fingerprint = " HEX32 "\n", 0, 3, "want ALGO$HEX" },
    { R "fingerprint = sha1$0g112233445566778899aabbccddeeff00112233\n", 0, 3,
      "bad fingerprint" },
    { R "fingerprint = sha1$:" HEX20 "\n", 0, 3, "bad fingerprint" },
    { R "fingerprint = sha1$" HEX20 "0\n", 0, 3, "bad fingerprint" },

    /* pubkey_pin */
    { R "pubkey_pin = sha256//" PIN32 "\n", 1, 0, NULL },
    { R "pubkey_pin = sha256//" PIN32 ", SHA256//" PIN32 "\n", 1, 0, NULL },
    { R "pubkey_pin = sha256//AAAAAAAAAAAAAAAAAAAAAA==\n", 0, 3,
      "32-byte" },
    { R "pubkey_pin = sha256//not*base64\n", 0, 3, "bad pubkey_pin" },
    { R "pubkey_pin = sha1//" PIN32 "\n", 0, 3, "want sha256//BASE64" },

    /* check_crl, crl_file */
    { R "check_crl = no\n", 1, 0, NULL },
    { R "check_crl = off\n", 1, 0, NULL },
    { R "check_crl = yes\n", 1, 0, NULL },
    { R "check_crl = true\n", 1, 0, NULL },
    { R "check_crl = yes\ncrl_file = /etc/crl.pem\n", 1, 0, NULL },
    { R "check_crl = maybe\n", 0, 3, "bad value \"maybe\" for check_crl" },
    { R "crl_file = /etc/crl.pem\n", 0, 3, "crl_file is only read with "
      "check_crl = yes, which [r] does not set" },

    /* ocsp_mode */
    { R "ocsp_mode = try_staple\n", 1, 0, NULL },
    { R "ocsp_mode = no_staple\n", 1, 0, NULL },
    { R "ocsp_mode = TRY_STAPLE\n", 1, 0, NULL },
    { R "ocsp_mode = must_staple\n", 1, 0, NULL },
    { R "ocsp_mode = try_staple | fail_hard\n", 1, 0, NULL },
    { R "ocsp_mode = full_chain\n", 0, 3, "full_chain needs resolve" },
    { R "ocsp_mode = full_chain|resolve\n", 1, 0, NULL },
    { R "ocsp_mode = resolve\n", 1, 0, NULL },
    { R "ocsp_mode = no_staple|must_staple\n", 0, 3, "contradicts" },
    { R "ocsp_mode = no_staple|try_staple\n", 0, 3, "no_staple contradicts "
      "try_staple" },
    { R "ocsp_mode = bogus\n", 0, 3, "bad value \"bogus\" for ocsp_mode" },
    { R "ocsp_mode = try_staple|\n", 0, 3, "for ocsp_mode" },
    { R "ocsp_mode = try_staple\nocsp_mode = no_staple\n", 0, 4,
      "duplicate key ocsp_mode" },

    /* integers */
    { R "ocsp_timeout = 1\n", 1, 0, NULL },
    { R "ocsp_timeout = 300\n", 1, 0, NULL },
    { R "ocsp_timeout = 0\n", 0, 3, "bad value \"0\" for ocsp_timeout (want "
      "a number from 1 to 300)" },
    { R "ocsp_timeout = 301\n", 0, 3, "for ocsp_timeout" },
    { R "ocsp_timeout = -1\n", 0, 3, "for ocsp_timeout" },
    { R "ocsp_timeout = +5\n", 0, 3, "for ocsp_timeout" },
    { R "ocsp_timeout = 5s\n", 0, 3, "for ocsp_timeout" },
    { R "ocsp_timeout = 99999999999999999999\n", 0, 3, "for ocsp_timeout" },
    { R "security_level = 0\n", 1, 0, NULL },
    { R "security_level = 5\n", 1, 0, NULL },
    { R "security_level = 6\n", 0, 3, "from 0 to 5" },
    { R "session_cache_size = 0\n", 1, 0, NULL },
    { R "session_cache_size = 100000\n", 1, 0, NULL },
    { R "session_cache_size = 100001\n", 0, 3, "from 0 to 100000" },
    { R "handshake_timeout = 1\n", 1, 0, NULL },
    { R "handshake_timeout = 3600\n", 1, 0, NULL },
    { R "handshake_timeout = 0\n", 0, 3, "from 1 to 3600" },
    { R "handshake_timeout = 3601\n", 0, 3, "from 1 to 3600" },

    /* hostname */
    { R "hostname = example.com\n", 1, 0, NULL },
    { R "hostname = \"\"\n", 1, 0, NULL },
    { R "hostname = 10.0.0.1\n", 0, 3, "SNI cannot carry" },
    { R "hostname = ::1\n", 0, 3, "SNI cannot carry" },
    { R "hostname = *.example.com\n", 0, 3, "wildcard" },
    { R "hostname = a..b\n", 0, 3, "empty label" },
    { R "hostname =\n", 0, 3, "missing value for hostname" },

    /* certificates and keys */
    { R "cert_file = /c.pem\n", 1, 0, NULL },
    { R "cert_file = /c.pem\nkey_file = /k.pem\npasswd_file = /p\n", 1, 0,
      NULL },
    { R "key_file = /k.pem\n", 0, 3, "key_file without cert_file in [r]" },
    { R "passwd_file = /p\ncert_file = /c.pem\n", 1, 0, NULL },
    { R "passwd_file = /p\n", 0, 3, "passwd_file without cert_file" },
    { R "cert_file = auto\n", 0, 3,
      "cert_file = auto is for listen rules only" },
    { R "cert_file = \"\"\n", 0, 3, "empty value for cert_file" },
    { R "sni_cert = a.example.com /c /k\n", 0, 3,
      "key sni_cert is for listen rules only" },
    { R "sni_cert = a.example.com /c\n", 0, 3, "bad sni_cert" },
    { R "sni_cert = a.example.com /c /k /x\n", 0, 3, "bad sni_cert" },
    { R "sni_cert = a..com /c /k\n", 0, 3, "empty label" },
    { R "client_ca_file = /ca.pem\n", 0, 3,
      "key client_ca_file is for listen rules only" },
    { R "ticket_key_file = /t\n", 0, 3,
      "key ticket_key_file is for listen rules only" },
    { R "auto_ca_dir = /d\n", 0, 3, "key auto_ca_dir is for listen rules only" },
    { R "crl_file = \"\"\n", 0, 3, "empty value for crl_file" },
    { R "cert_file = /c\nkey_file = \"\"\n", 0, 4,
      "empty value for key_file" },
    { R "cert_file = /c\npasswd_file = \"\"\n", 0, 4,
      "empty value for passwd_file" },
    { R "client_ca_file = \"\"\n", 0, 3, "empty value for client_ca_file" },
    { R "ticket_key_file = \"\"\n", 0, 3, "empty value for ticket_key_file" },
    { R "auto_ca_dir = \"\"\n", 0, 3, "empty value for auto_ca_dir" },
    { "[listen-defaults]\nsni_cert = *.example.com /c /k\n", 1, 0, NULL },
    { "[listen-defaults]\nsni_cert = *.*.com /c /k\n", 0, 2, "bad wildcard" },
    { "[listen-defaults]\nhonor_cipher_order = maybe\n", 0, 2,
      "bad value \"maybe\" for honor_cipher_order (want yes or no)" },
    { "[listen-defaults]\nhonor_cipher_order = yes\n"
      "honor_cipher_order = no\n", 0, 3, "duplicate key honor_cipher_order" },

    /* OpenSSL strings */
    { R "cipher_list = ECDHE+AESGCM:!aNULL:@SECLEVEL=2\n", 1, 0, NULL },
    { R "ciphersuites = TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384\n", 1,
      0, NULL },
    { R "ecdh_curve = X25519:P-256\n", 1, 0, NULL },
    { R "cipher_list = HIGH$\n", 0, 3, "bad value \"HIGH$\" for cipher_list" },
    { R "ciphersuites = \"TLS AES\"\n", 0, 3, "for ciphersuites" },
    { R "ecdh_curve = X25519 P-256\n", 0, 3, "for ecdh_curve" },

    /* alpn_protocols */
    { R "alpn_protocols = h2,http/1.1\n", 1, 0, NULL },
    { R "alpn_protocols = h2 , http/1.1\n", 1, 0, NULL },
    { R "alpn_protocols = h2,,http/1.1\n", 0, 3, "bad alpn_protocols" },
    { R "alpn_protocols = h2,\n", 0, 3, "bad alpn_protocols" },
    { R "alpn_protocols = h2 x\n", 0, 3, "a protocol has a space" },
    { R "alpn_protocols = h2\nalpn_protocols = http/1.1\n", 0, 4,
      "duplicate key alpn_protocols" },

    /* session_key, strict_eof */
    { R "session_key = pool-1\n", 1, 0, NULL },
    { R "strict_eof = yes\n", 1, 0, NULL },
    { R "strict_eof = 0\n", 1, 0, NULL },
    { R "strict_eof = maybe\n", 0, 3,
      "bad value \"maybe\" for strict_eof (want yes or no)" },

    /* starttls, starttls_required, redirect, ktls */
    { R "starttls = smtp\n", 1, 0, NULL },
    { R "starttls = imap\n", 1, 0, NULL },
    { R "starttls = pop3\n", 1, 0, NULL },
    { R "starttls = ftp\n", 1, 0, NULL },
    { R "starttls = ldap\n", 1, 0, NULL },
    { R "starttls = xmpp\n", 1, 0, NULL },
    { R "starttls = nntp\n", 1, 0, NULL },
    { R "starttls = postgres\n", 1, 0, NULL },
    { R "starttls = SMTP\n", 1, 0, NULL },
    { R "starttls = smtp\nstarttls_required = no\n", 1, 0, NULL },
    { R "starttls_required = no\n", 1, 0, NULL },
    { "[defaults]\nstarttls = imap\n[r]\nconnect = :143\n", 1, 0, NULL },
    { R "starttls = smtpx\n", 0, 3, "bad value \"smtpx\" for starttls" },
    { R "starttls = \"smtp imap\"\n", 0, 3, "for starttls" },
    { R "starttls = mysql\n", 1, 0, NULL },
    { R "starttls = MySQL\nstarttls_required = no\n", 1, 0, NULL },
    { "[r]\nlisten = :3306\ncert_file = /c\nstarttls = mysql\n", 0, 4,
      "starttls = mysql on listen rules is not supported" },
    { R "starttls = smtp\nstarttls = imap\n", 0, 4,
      "duplicate key starttls" },
    { R "starttls_required = perhaps\n", 0, 3, "for starttls_required" },
    { R "starttls = smtp\naction = auto\n", 0, 3,
      "starttls needs action tls (it is auto in [r])" },
    { R "action = plain\nstarttls = smtp\n", 0, 4,
      "starttls needs action tls (it is plain in [r])" },
    { "[defaults]\nstarttls = smtp\n[r]\nconnect = :25\naction = deny\n",
      0, 5, "starttls needs action tls (it is deny in [r])" },
    { R "starttls = xmpp\nstarttls_required = no\n", 0, 4,
      "starttls_required = no is not possible with starttls = xmpp" },
    /* on listen rules tlsshim offers STARTTLS for smtp, imap, pop3 */
    { "[r]\nlisten = :25\ncert_file = /c\nstarttls = smtp\n", 1, 0, NULL },
    { "[r]\nlisten = :143\ncert_file = /c\nstarttls = imap\n"
      "starttls_required = yes\n", 1, 0, NULL },
    { "[r]\nlisten = :110\ncert_file = /c\nstarttls = pop3\n", 1, 0, NULL },
    { "[listen-defaults]\nstarttls = imap\n", 1, 0, NULL },
    { "[r]\nlisten = :21\ncert_file = /c\nstarttls = ftp\n", 0, 4,
      "starttls = ftp on listen rules is not supported (tlsshim offers "
      "STARTTLS to clients for smtp, imap and pop3), and [r] is a listen "
      "rule" },
    { "[r]\nlisten = :5432\ncert_file = /c\nstarttls = postgres\n", 0, 4,
      "starttls = postgres on listen rules is not supported" },
    { "[listen-defaults]\nstarttls = ldap\n", 0, 2,
      "starttls = ldap on listen rules is not supported" },
    { "[r]\nlisten = :25\ncert_file = /c\nstarttls_required = yes\n", 0, 4,
      "starttls_required = yes on a listen rule needs starttls (in [r])" },
    { "[r]\nlisten = :25\ncert_file = /c\nstarttls_required = no\n", 1, 0,
      NULL },
    { R "redirect = :8443\n", 1, 0, NULL },
    { R "redirect = backend.example.com:443\n", 1, 0, NULL },
    { R "redirect = [::1]:443\n", 1, 0, NULL },
    { R "redirect = :8443\naction = deny\n", 0, 3,
      "redirect needs action tls, auto or enforce (it is deny in [r])" },
    { R "redirect = backend\n", 0, 3, "needs a port" },
    { R "redirect = ::1:443\n", 0, 3, "IPv6 addresses need brackets" },
    { R "redirect = :0\n", 0, 3, "bad port in redirect" },
    { R "redirect = :80-90\n", 0, 3, "bad port in redirect" },
    { R "redirect = 1.2.3:80\n", 0, 3, "bad IPv4 address in redirect" },
    { R "ktls = auto\n", 1, 0, NULL },
    { R "ktls = no\n", 1, 0, NULL },
    { R "ktls = yes\n", 1, 0, NULL },
    { R "ktls = on\n", 1, 0, NULL },
    /* session_cache_dir */
    { R "session_cache_dir = /run/user/1000/tls\n", 1, 0, NULL },
    { R "session_cache_dir = auto\n", 1, 0, NULL },
    { R "session_cache_dir = OFF\n", 1, 0, NULL },
    { R "session_cache_dir = cache\n", 0, 3,
      "bad value \"cache\" for session_cache_dir (want an absolute "
      "directory path, auto or off)" },
    { R "ktls = sometimes\n", 0, 3, "(want yes, no or auto)" },

    /* [global] */
    { "[global]\ndefault_action = deny\n", 1, 0, NULL },
    { "[global]\ndefault_listen_action = plain\n", 1, 0, NULL },
    { "[global]\ndefault_action = audit\n", 1, 0, NULL },
    { "[global]\ndefault_listen_action = audit\n", 1, 0, NULL },
    { "[global]\ndefault_action = tls\n", 0, 2,
      "bad value \"tls\" for default_action (want plain, deny or audit)" },
    { "[global]\ndefault_listen_action = auto\n", 0, 2, "want plain, deny" },
    { "[global]\nlog = syslog\ndebug = 3\n", 1, 0, NULL },
    { "[global]\nreport = /tmp/r.json\n", 1, 0, NULL },
    { "[global]\ndebug = 4\n", 0, 2, "from 0 to 3" },
    { "[global]\ndebug = -1\n", 0, 2, "for debug" },
    { "[global]\nreport_open = yes\n", 1, 0, NULL },
    { "[global]\nreport_open = no\n", 1, 0, NULL },
    { "[global]\nreport_open = maybe\n", 0, 2, "report_open" },
    { "[global]\nkeylog = no\n", 1, 0, NULL },
    { "[global]\nkeylog = yes\n", 1, 0, NULL },
    { "[global]\nuncovered = refuse\n", 1, 0, NULL },
    { "[global]\nuncovered = allow\n", 1, 0, NULL },
    { "[global]\nuncovered = maybe\n", 0, 2, "(want refuse, warn or allow)" },
    { "[global]\nlog = a\nlog = b\n", 0, 3,
      "duplicate key log in [global] (first set on line 2)" },
    { "[global]\nlog = \"\"\n", 0, 2, "empty value for log" },
    { "[global]\nreport = \"\"\n", 0, 2, "empty value for report" },
    { "[global]\ndefault_action = plain\ndefault_action = deny\n", 0, 3,
      "duplicate key default_action in [global]" },

    /* Multi-valued keys accumulate; single ones do not. */
    { "[r]\nconnect = :443\nconnect = :993, :995\n", 1, 0, NULL },
    { R "fingerprint = sha1$" HEX20 "\nfingerprint = sha256$" HEX32 "\n", 1, 0,
      NULL },
    { "[r]\nconnect = ,, ,\n", 0, 2, "empty value for connect" },
    { "[r]\nconnect = :443 ::1\n", 0, 2, "IPv6 addresses need brackets" },
};

static void
test_parse_rows(void)
{
    char err[1024], prefix[64];
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(parse_rows); i++) {
        const struct parse_row *row = &parse_rows[i];
        struct policy *p;

        unit_row("parse row %zu: %s", i, row->text);
        p = policy_parse(row->text, strlen(row->text), name, err,
                         sizeof(err));
        if (row->ok) {
            CHECK_MSG(p != NULL, "unexpected error: %s", err);
            CHECK_STR(err, "");
        } else {
            CHECK_MSG(p == NULL, "parsed but should fail");
            if (row->line > 0)
                snprintf(prefix, sizeof(prefix), "%s:%d: ", name, row->line);
            else
                snprintf(prefix, sizeof(prefix), "%s: ", name);
            CHECK_MSG(strncmp(err, prefix, strlen(prefix)) == 0,
                      "error \"%s\" does not start with \"%s\"", err, prefix);
            CHECK_MSG(strstr(err, row->msg) != NULL,
                      "error \"%s\" does not contain \"%s\"", err, row->msg);
        }
        policy_free(p);
    }
    unit_row("%s", "");
}

/* Messages that must match exactly, as the documentation shows them. */
static void
test_exact_messages(void)
{
    static const struct {
        const char *text, *err;
    } rows[] = {
        { "[web]\nconnect = :443\n\n\n\n\nverfy_mode = peer\n",
          "t.conf:7: unknown key \"verfy_mode\" in [web]" },
        { "\n\n[s]\nconnect = :1\nstrict_eof = maybe\n",
          "t.conf:5: bad value \"maybe\" for strict_eof (want yes or no)" },
        { "[r]\nconnect = :443\naction = enforce\nocsp_mode = no_staple|"
          "must_staple\n",
          "t.conf:4: ocsp_mode \"no_staple|must_staple\": no_staple "
          "contradicts must_staple" },
        { "[r]\nlisten = :3306\ncert_file = /c\nstarttls = mysql\n",
          "t.conf:4: starttls = mysql on listen rules is not supported "
          "(tlsshim offers STARTTLS to clients for smtp, imap and pop3), "
          "and [r] is a listen rule" },
        { "[r]\nlisten = :443\ncert_file = /c\nstarttls = nntp\n",
          "t.conf:4: starttls = nntp on listen rules is not supported "
          "(tlsshim offers STARTTLS to clients for smtp, imap and pop3), "
          "and [r] is a listen rule" },
        { "[r]\nlisten = :443\ncert_file = /c\nsession_cache_dir = /d\n",
          "t.conf:4: key session_cache_dir is for connect rules only, and "
          "[r] is a listen rule" },
        { "[r]\nconnect = :443\nversion = SSLv3\n",
          "t.conf:3: SSLv3 is not supported (version \"SSLv3\")" },
    };
    char err[1024];
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(rows); i++) {
        struct policy *p;

        unit_row("exact message %zu", i);
        p = policy_parse(rows[i].text, strlen(rows[i].text), name, err,
                         sizeof(err));
        CHECK(p == NULL);
        CHECK_STR(err, rows[i].err);
        policy_free(p);
    }
    unit_row("%s", "");
}

/* --- patterns --------------------------------------------------------- */

struct pattern_row {
    const char *pattern;
    int ok;
    int kind;
    const char *addr; /* IPv4/IPv6 text, normalised */
    int prefix;
    const char *name;
    int wildcard;
    unsigned lo, hi;
    const char *msg;
};

static const struct pattern_row pattern_rows[] = {
    { "10.0.0.1", 1, PAT_IPV4, "10.0.0.1", 32, NULL, 0, 0, 65535, NULL },
    { "10.0.0.1:443", 1, PAT_IPV4, "10.0.0.1", 32, NULL, 0, 443, 443, NULL },
    { "10.1.2.3/8", 1, PAT_IPV4, "10.0.0.0", 8, NULL, 0, 0, 65535, NULL },
    { "192.168.1.77/26:22", 1, PAT_IPV4, "192.168.1.64", 26, NULL, 0, 22, 22,
      NULL },
    { "0.0.0.0/0", 1, PAT_IPV4, "0.0.0.0", 0, NULL, 0, 0, 65535, NULL },
    { "[::1]", 1, PAT_IPV6, "::1", 128, NULL, 0, 0, 65535, NULL },
    { "[::1]:443", 1, PAT_IPV6, "::1", 128, NULL, 0, 443, 443, NULL },
    { "[fd00::1]/8", 1, PAT_IPV6, "fd00::", 8, NULL, 0, 0, 65535, NULL },
    { "[fd12:3456::]/20:8000-8099", 1, PAT_IPV6, "fd12:3000::", 20, NULL, 0,
      8000, 8099, NULL },
    { "[::ffff:10.1.2.3]", 1, PAT_IPV4, "10.1.2.3", 32, NULL, 0, 0, 65535,
      NULL },
    { "[::ffff:10.1.2.3]/104", 1, PAT_IPV4, "10.0.0.0", 8, NULL, 0, 0, 65535,
      NULL },
    { "example.com", 1, PAT_NAME, NULL, 0, "example.com", 0, 0, 65535, NULL },
    { "Example.COM.:25", 1, PAT_NAME, NULL, 0, "example.com", 0, 25, 25,
      NULL },
    { "*.example.com:443", 1, PAT_NAME, NULL, 0, "example.com", 1, 443, 443,
      NULL },
    { "*.com", 1, PAT_NAME, NULL, 0, "com", 1, 0, 65535, NULL },
    { "_srv.a-b.example.com", 1, PAT_NAME, NULL, 0, "_srv.a-b.example.com", 0,
      0, 65535, NULL },
    { "a23456789012345678901234567890123456789012345678901234567890123.com",
      1, PAT_NAME, NULL, 0,
      "a23456789012345678901234567890123456789012345678901234567890123.com",
      0, 0, 65535, NULL },
    { "localhost", 1, PAT_NAME, NULL, 0, "localhost", 0, 0, 65535, NULL },
    { "*", 1, PAT_ANY_HOST, NULL, 0, NULL, 0, 0, 65535, NULL },
    { ":443", 1, PAT_ANY_HOST, NULL, 0, NULL, 0, 443, 443, NULL },
    { "*:443", 1, PAT_ANY_HOST, NULL, 0, NULL, 0, 443, 443, NULL },
    { ":*", 1, PAT_ANY_HOST, NULL, 0, NULL, 0, 0, 65535, NULL },
    { "example.com:*", 1, PAT_NAME, NULL, 0, "example.com", 0, 0, 65535,
      NULL },
    { ":8000-8099", 1, PAT_ANY_HOST, NULL, 0, NULL, 0, 8000, 8099, NULL },
    { ":1-65535", 1, PAT_ANY_HOST, NULL, 0, NULL, 0, 1, 65535, NULL },
    { ":65535", 1, PAT_ANY_HOST, NULL, 0, NULL, 0, 65535, 65535, NULL },

    { "10.0.0.0/33", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad prefix length" },
    { "10.0.0.0/", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad prefix length" },
    { "10.0.0.0/-1", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad prefix length" },
    { "10.0.0.256", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad IPv4 address" },
    { "10.0.0", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad IPv4 address" },
    { "010.0.0.1", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad IPv4 address" },
    { "10.0.0.1.5", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad IPv4 address" },
    { "10..0.1", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad IPv4 address" },
    { "a.b.123", 0, 0, NULL, 0, NULL, 0, 0, 0, "neither a DNS name nor" },
    { "::1", 0, 0, NULL, 0, NULL, 0, 0, 0, "IPv6 addresses need brackets" },
    { "fe80::1:443", 0, 0, NULL, 0, NULL, 0, 0, 0, "need brackets" },
    { "2001:db8::/32", 0, 0, NULL, 0, NULL, 0, 0, 0, "need brackets" },
    { "host:1:2", 0, 0, NULL, 0, NULL, 0, 0, 0, "more than one ':'" },
    { "[::1", 0, 0, NULL, 0, NULL, 0, 0, 0, "missing ']'" },
    { "[::1]x", 0, 0, NULL, 0, NULL, 0, 0, 0, "junk after ']'" },
    { "[::1]:", 0, 0, NULL, 0, NULL, 0, 0, 0, "missing port" },
    { "[1.2.3.4]", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad IPv6 address" },
    { "[example.com]:443", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad IPv6 address" },
    { "[fe80::1%eth0]", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad IPv6 address" },
    { "[]", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad IPv6 address" },
    { "[::1]/129", 0, 0, NULL, 0, NULL, 0, 0, 0, "(want 0 to 128)" },
    { ":0", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad port \"0\"" },
    { ":65536", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad port" },
    { ":abc", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad port" },
    { ":+80", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad port" },
    { ":9000-8000", 0, 0, NULL, 0, NULL, 0, 0, 0, "ends below its start" },
    { ":80-", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad port range" },
    { ":-80", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad port range" },
    { ":1-2-3", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad port range" },
    { "example.com:", 0, 0, NULL, 0, NULL, 0, 0, 0, "missing port" },
    { ":", 0, 0, NULL, 0, NULL, 0, 0, 0, "missing port" },
    { "a.*.com", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad wildcard" },
    { "*example.com", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad wildcard" },
    { "**.example.com", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad wildcard" },
    { "*.*.example.com", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad wildcard" },
    { "foo*.example.com", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad wildcard" },
    { "*.", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad wildcard" },
    { "*.:443", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad wildcard" },
    { "-a.example.com", 0, 0, NULL, 0, NULL, 0, 0, 0, "starts or ends" },
    { "a-.example.com", 0, 0, NULL, 0, NULL, 0, 0, 0, "starts or ends" },
    { "a..example.com", 0, 0, NULL, 0, NULL, 0, 0, 0, "empty label" },
    { ".example.com", 0, 0, NULL, 0, NULL, 0, 0, 0, "empty label" },
    { "ex!ample.com", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad character" },
    { "b\xc3\xa4r.example", 0, 0, NULL, 0, NULL, 0, 0, 0, "bad character" },
    { "a234567890123456789012345678901234567890123456789012345678901234.com",
      0, 0, NULL, 0, NULL, 0, 0, 0, "longer than 63" },
    { "example.com/24", 0, 0, NULL, 0, NULL, 0, 0, 0, "prefix length needs" },
    { "*/8", 0, 0, NULL, 0, NULL, 0, 0, 0, "prefix length needs" },
    { "/8:443", 0, 0, NULL, 0, NULL, 0, 0, 0, "prefix length needs" },
};

static void
test_pattern_rows(void)
{
    char text[512], err[1024], addr[INET6_ADDRSTRLEN];
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(pattern_rows); i++) {
        const struct pattern_row *row = &pattern_rows[i];
        const struct policy_pattern *pat;
        struct policy *p;

        unit_row("pattern %s", row->pattern);
        snprintf(text, sizeof(text), "[r]\nconnect = %s\n", row->pattern);
        p = policy_parse(text, strlen(text), name, err, sizeof(err));
        if (!row->ok) {
            CHECK(p == NULL);
            CHECK_MSG(strncmp(err, "t.conf:2: ", 10) == 0, "err: %s", err);
            CHECK_MSG(strstr(err, row->msg) != NULL,
                      "error \"%s\" does not contain \"%s\"", err, row->msg);
            policy_free(p);
            continue;
        }
        if (!CHECK_MSG(p != NULL, "unexpected error: %s", err))
            continue;
        CHECK_INT(p->rules[0].npatterns, 1);
        pat = &p->rules[0].patterns[0];
        CHECK_INT(pat->kind, row->kind);
        CHECK_INT(pat->port_lo, row->lo);
        CHECK_INT(pat->port_hi, row->hi);
        CHECK_STR(pat->text, row->pattern);
        if (row->kind == PAT_IPV4 || row->kind == PAT_IPV6) {
            inet_ntop(row->kind == PAT_IPV4 ? AF_INET : AF_INET6, pat->addr,
                      addr, sizeof(addr));
            CHECK_STR(addr, row->addr);
            CHECK_INT(pat->prefix, row->prefix);
        }
        if (row->kind == PAT_NAME) {
            CHECK_STR(pat->name, row->name);
            CHECK_INT(pat->wildcard, row->wildcard);
        }
        policy_free(p);
    }
    unit_row("%s", "");
}

/* --- version syntax --------------------------------------------------- */

struct version_row {
    const char *lines; /* key lines after "security_level = 0" */
    int ok;
    int min, max;
    const char *msg;
};

static const struct version_row version_rows[] = {
    { "version = SSLv23:!SSLv3:!SSLv2:!TLSv1:!TLSv1_1\n", 1, TLS1_2_VERSION,
      TLS1_3_VERSION, NULL },
    { "version = SSLv23:!SSLv3:!SSLv2\n", 1, TLS1_VERSION, TLS1_3_VERSION,
      NULL },
    { "version = SSLv23\n", 1, TLS1_VERSION, TLS1_3_VERSION, NULL },
    { "version = SSLv2/3:!TLSv1\n", 1, TLS1_1_VERSION, TLS1_3_VERSION, NULL },
    { "version = SSLv23:!TLSv1_3\n", 1, TLS1_VERSION, TLS1_2_VERSION, NULL },
    { "version = TLSv1_2\n", 1, TLS1_2_VERSION, TLS1_2_VERSION, NULL },
    { "version = TLSv1_3\n", 1, TLS1_3_VERSION, TLS1_3_VERSION, NULL },
    { "version = TLSv1\n", 1, TLS1_VERSION, TLS1_VERSION, NULL },
    { "version = TLSv1.1\n", 1, TLS1_1_VERSION, TLS1_1_VERSION, NULL },
    { "version = TLSv12\n", 1, TLS1_2_VERSION, TLS1_2_VERSION, NULL },
    { "version = tlsv1_2\n", 1, TLS1_2_VERSION, TLS1_2_VERSION, NULL },
    { "version = TLSv1_2:TLSv1_3\n", 1, TLS1_2_VERSION, TLS1_3_VERSION, NULL },
    { "version = \" TLSv1_2 : TLSv1_3 \"\n", 1, TLS1_2_VERSION,
      TLS1_3_VERSION, NULL },
    { "version = TLSv1:TLSv1_1\n", 1, TLS1_VERSION, TLS1_1_VERSION, NULL },
    { "version = SSLv23:!TLSv1:!TLSv1_1:!TLSv1_3\n", 1, TLS1_2_VERSION,
      TLS1_2_VERSION, NULL },
    { "version = SSLv3:!SSLv3:TLSv1_2\n", 1, TLS1_2_VERSION, TLS1_2_VERSION,
      NULL },
    { "version = TLSv1_3:!TLSv1_3:TLSv1_2\n", 1, TLS1_2_VERSION,
      TLS1_2_VERSION, NULL },
    { "version = TLSv1_3\nmin_version = TLSv1_2\n", 1, TLS1_2_VERSION,
      TLS1_3_VERSION, NULL },
    { "version = TLSv1_2\nmax_version = TLSv1_3\n", 1, TLS1_2_VERSION,
      TLS1_3_VERSION, NULL },
    { "min_version = TLSv1_3\n", 1, TLS1_3_VERSION, TLS1_3_VERSION, NULL },
    { "max_version = TLSv1_2\n", 1, TLS1_2_VERSION, TLS1_2_VERSION, NULL },
    { "min_version = TLSv1\n", 1, TLS1_VERSION, TLS1_3_VERSION, NULL },
    { "min_version = tlsv1.1\nmax_version = TLSv1_1\n", 1, TLS1_1_VERSION,
      TLS1_1_VERSION, NULL },

    { "version = SSLv3\n", 0, 0, 0, "SSLv3 is not supported" },
    { "version = SSLv2\n", 0, 0, 0, "SSLv2 is not supported" },
    { "version = SSLv23:SSLv3\n", 0, 0, 0, "SSLv3 is not supported" },
    { "version = SSLv2:SSLv3:TLSv1_2\n", 0, 0, 0, "SSLv2 is not supported" },
    { "version = !TLSv1\n", 0, 0, 0, "enables no protocol" },
    { "version = TLSv1_3:!TLSv1_3\n", 0, 0, 0, "enables no protocol" },
    { "version = SSLv23:!TLSv1:!TLSv1_1:!TLSv1_2:!TLSv1_3\n", 0, 0, 0,
      "enables no protocol" },
    { "version = TLSv1:TLSv1_2\n", 0, 0, 0,
      "enables TLSv1 and TLSv1_2 but not TLSv1_1: the enabled versions "
      "must be contiguous" },
    { "version = SSLv23:!TLSv1_2\n", 0, 0, 0, "must be contiguous" },
    { "version = TLSv1:TLSv1_3\n", 0, 0, 0, "must be contiguous" },
    { "version = TLSv1_4\n", 0, 0, 0, "unknown protocol \"TLSv1_4\"" },
    { "version = TLSv2\n", 0, 0, 0, "unknown protocol \"TLSv2\"" },
    { "version = TLSv1_2:\n", 0, 0, 0, "empty term" },
    { "version = TLSv1_2::TLSv1_3\n", 0, 0, 0, "empty term" },
    { "version = !!TLSv1_2\n", 0, 0, 0, "unknown protocol" },
    { "version = !\n", 0, 0, 0, "empty term" },
    { "version = TLSv1_2 TLSv1_3\n", 0, 0, 0, "unknown protocol" },
    { "version = \"\"\n", 0, 0, 0, "empty value for version" },
    { "min_version = SSLv3\n", 0, 0, 0, "bad value \"SSLv3\" for "
      "min_version (want TLSv1, TLSv1_1, TLSv1_2 or TLSv1_3)" },
    { "min_version = SSLv23\n", 0, 0, 0, "bad value" },
    { "max_version = TLSv1_2:TLSv1_3\n", 0, 0, 0, "bad value" },
    { "max_version = !TLSv1_2\n", 0, 0, 0, "bad value" },
    { "max_version = TLSv1_4\n", 0, 0, 0, "bad value" },
    { "min_version = TLSv1_3\nmax_version = TLSv1_2\n", 0, 0, 0,
      "the lowest protocol TLSv1_3 is above the highest TLSv1_2" },
    { "version = TLSv1_3\nmax_version = TLSv1_2\n", 0, 0, 0, "is above" },
    { "version = TLSv1_2\nversion = TLSv1_3\n", 0, 0, 0, "duplicate key" },
};

static void
test_version_rows(void)
{
    char text[512], err[1024];
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(version_rows); i++) {
        const struct version_row *row = &version_rows[i];
        struct policy *p;

        unit_row("version row %zu: %s", i, row->lines);
        snprintf(text, sizeof(text), "[r]\nconnect = :443\n"
                 "security_level = 0\n%s", row->lines);
        p = policy_parse(text, strlen(text), name, err, sizeof(err));
        if (row->ok) {
            if (CHECK_MSG(p != NULL, "unexpected error: %s", err)) {
                CHECK_INT(p->rules[0].min_version, row->min);
                CHECK_INT(p->rules[0].max_version, row->max);
            }
        } else {
            CHECK(p == NULL);
            CHECK_MSG(strncmp(err, "t.conf:4: ", 10) == 0 ||
                      strncmp(err, "t.conf:5: ", 10) == 0, "err: %s", err);
            CHECK_MSG(strstr(err, row->msg) != NULL,
                      "error \"%s\" does not contain \"%s\"", err, row->msg);
        }
        policy_free(p);
    }
    unit_row("%s", "");
}

/* TLS 1.0/1.1 and the security level, wherever each comes from. */
static const struct parse_row seclevel_rows[] = {
    { R "version = SSLv23\n", 0, 3, "TLS 1.0/1.1 need security_level = 0" },
    { R "min_version = TLSv1_1\n", 0, 3, "TLS 1.0/1.1 need security_level" },
    { R "min_version = TLSv1_1\nsecurity_level = 1\n", 0, 3,
      "need security_level = 0 (in [r], the lowest protocol is TLSv1_1 and "
      "security_level is 1)" },
    { R "security_level = 0\nversion = SSLv23\n", 1, 0, NULL },
    { "[defaults]\nsecurity_level = 0\n[r]\nconnect = :1\nversion = TLSv1\n",
      1, 0, NULL },
    { "[defaults]\nversion = TLSv1:TLSv1_1:TLSv1_2\n", 0, 2,
      "need security_level = 0 (in [defaults]" },
    { "[defaults]\nversion = TLSv1:TLSv1_1:TLSv1_2\nsecurity_level = 0\n"
      "[r]\nconnect = :1\nsecurity_level = 2\n", 0, 6,
      "need security_level = 0 (in [r]" },
    { "[defaults]\nmin_version = TLSv1_3\n[r]\nconnect = :1\n"
      "max_version = TLSv1_2\n", 0, 5, "is above the highest" },
    { "[listen-defaults]\nversion = TLSv1_1\n", 0, 2, "need security_level" },
};

static void
test_seclevel_rows(void)
{
    char err[1024], prefix[64];
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(seclevel_rows); i++) {
        const struct parse_row *row = &seclevel_rows[i];
        struct policy *p;

        unit_row("seclevel row %zu: %s", i, row->text);
        p = policy_parse(row->text, strlen(row->text), name, err,
                         sizeof(err));
        if (row->ok) {
            CHECK_MSG(p != NULL, "unexpected error: %s", err);
        } else {
            CHECK(p == NULL);
            snprintf(prefix, sizeof(prefix), "t.conf:%d: ", row->line);
            CHECK_MSG(strncmp(err, prefix, strlen(prefix)) == 0,
                      "error \"%s\" does not start with \"%s\"", err, prefix);
            CHECK_MSG(strstr(err, row->msg) != NULL,
                      "error \"%s\" does not contain \"%s\"", err, row->msg);
        }
        policy_free(p);
    }
    unit_row("%s", "");
}

/* --- effective values, inheritance and origins ------------------------ */

enum field {
    F_ACTION,
    F_VERIFY_MODE,
    F_CA_SYSTEM,
    F_PUBLICSUFFIX,
    F_NFINGERPRINTS,
    F_CHECK_CRL,
    F_OCSP_MODE,
    F_OCSP_TIMEOUT,
    F_SECURITY_LEVEL,
    F_MIN_VERSION,
    F_MAX_VERSION,
    F_HONOR,
    F_ALPN_LEN,
    F_SESSION_CACHE,
    F_HANDSHAKE_TIMEOUT,
    F_STRICT_EOF,
    F_STARTTLS_REQUIRED,
    F_KTLS,
    F_NPATTERNS,
};

static long
field_value(const struct policy_rule *r, enum field f)
{
    switch (f) {
    case F_ACTION: return r->action;
    case F_VERIFY_MODE: return r->verify_mode;
    case F_CA_SYSTEM: return r->ca_system;
    case F_PUBLICSUFFIX: return r->verifycn_publicsuffix;
    case F_NFINGERPRINTS: return (long)r->nfingerprints;
    case F_CHECK_CRL: return r->check_crl;
    case F_OCSP_MODE: return (long)r->ocsp_mode;
    case F_OCSP_TIMEOUT: return r->ocsp_timeout;
    case F_SECURITY_LEVEL: return r->security_level;
    case F_MIN_VERSION: return r->min_version;
    case F_MAX_VERSION: return r->max_version;
    case F_HONOR: return r->honor_cipher_order;
    case F_ALPN_LEN: return (long)r->alpn_wire_len;
    case F_SESSION_CACHE: return r->session_cache_size;
    case F_HANDSHAKE_TIMEOUT: return r->handshake_timeout;
    case F_STRICT_EOF: return r->strict_eof;
    case F_STARTTLS_REQUIRED: return r->starttls_required;
    case F_KTLS: return r->ktls;
    case F_NPATTERNS: return (long)r->npatterns;
    }
    return -1;
}

struct field_row {
    const char *text;
    enum field field;
    long want;
    enum policy_key key;     /* whose origin and value text to check */
    enum policy_origin origin;
    int line;                /* value_line */
    const char *value;       /* value[key], NULL when built in */
};

#define D "[defaults]\n"
static const struct field_row field_rows[] = {
    /* Built-in defaults of a client rule. */
    { R, F_ACTION, POLICY_TLS, PK_ACTION, POLICY_ORIGIN_BUILTIN, 0, NULL },
    { R, F_VERIFY_MODE, POLICY_VERIFY_PEER, PK_VERIFY_MODE,
      POLICY_ORIGIN_BUILTIN, 0, NULL },
    { R, F_CA_SYSTEM, 1, PK_CA_FILE, POLICY_ORIGIN_BUILTIN, 0, NULL },
    { R, F_PUBLICSUFFIX, 1, PK_VERIFYCN_PUBLICSUFFIX, POLICY_ORIGIN_BUILTIN,
      0, NULL },
    { R, F_OCSP_MODE, POLICY_OCSP_TRY_STAPLE, PK_OCSP_MODE,
      POLICY_ORIGIN_BUILTIN, 0, NULL },
    { R, F_OCSP_TIMEOUT, 5, PK_OCSP_TIMEOUT, POLICY_ORIGIN_BUILTIN, 0, NULL },
    { R, F_SECURITY_LEVEL, 2, PK_SECURITY_LEVEL, POLICY_ORIGIN_BUILTIN, 0,
      NULL },
    { R, F_MIN_VERSION, TLS1_2_VERSION, PK_VERSION, POLICY_ORIGIN_BUILTIN, 0,
      NULL },
    { R, F_MAX_VERSION, TLS1_3_VERSION, PK_MAX_VERSION, POLICY_ORIGIN_BUILTIN,
      0, NULL },
    { R, F_SESSION_CACHE, 64, PK_SESSION_CACHE_SIZE, POLICY_ORIGIN_BUILTIN, 0,
      NULL },
    { R, F_HANDSHAKE_TIMEOUT, 30, PK_HANDSHAKE_TIMEOUT, POLICY_ORIGIN_BUILTIN,
      0, NULL },
    { R, F_STRICT_EOF, 0, PK_STRICT_EOF, POLICY_ORIGIN_BUILTIN, 0, NULL },
    { R, F_STARTTLS_REQUIRED, 1, PK_STARTTLS_REQUIRED, POLICY_ORIGIN_BUILTIN,
      0, NULL },
    { R, F_KTLS, POLICY_KTLS_AUTO, PK_KTLS, POLICY_ORIGIN_BUILTIN, 0, NULL },
    { R, F_CHECK_CRL, 0, PK_CHECK_CRL, POLICY_ORIGIN_BUILTIN, 0, NULL },
    { R, F_NPATTERNS, 1, PK_CONNECT, POLICY_ORIGIN_RULE, 2, ":443" },

    /* A rule's own values, normalised. */
    { R "verify_mode = 0\n", F_VERIFY_MODE, POLICY_VERIFY_NONE,
      PK_VERIFY_MODE, POLICY_ORIGIN_RULE, 3, "none" },
    { R "verify_mode = none\n", F_OCSP_MODE, POLICY_OCSP_NO_STAPLE,
      PK_OCSP_MODE, POLICY_ORIGIN_BUILTIN, 0, NULL },
    { R "verify_mode = none\nocsp_mode = try_staple\n", F_OCSP_MODE,
      POLICY_OCSP_TRY_STAPLE, PK_OCSP_MODE, POLICY_ORIGIN_RULE, 4,
      "try_staple" },
    { R "ocsp_mode = TRY_STAPLE\n", F_OCSP_MODE, POLICY_OCSP_TRY_STAPLE,
      PK_OCSP_MODE, POLICY_ORIGIN_RULE, 3, "try_staple" },
    { R "ca_file = /etc/ca.pem\n", F_CA_SYSTEM, 0, PK_CA_FILE,
      POLICY_ORIGIN_RULE, 3, "/etc/ca.pem" },
    { R "ca_path = /etc/certs\n", F_CA_SYSTEM, 0, PK_CA_PATH,
      POLICY_ORIGIN_RULE, 3, "/etc/certs" },
    { R "ca_file = SYSTEM\n", F_CA_SYSTEM, 1, PK_CA_FILE, POLICY_ORIGIN_RULE,
      3, "system" },
    { R "strict_eof = on\n", F_STRICT_EOF, 1, PK_STRICT_EOF,
      POLICY_ORIGIN_RULE, 3, "yes" },
    { R "verifycn_publicsuffix = false\n", F_PUBLICSUFFIX, 0,
      PK_VERIFYCN_PUBLICSUFFIX, POLICY_ORIGIN_RULE, 3, "no" },
    { R "ktls = off\n", F_KTLS, POLICY_KTLS_NO, PK_KTLS, POLICY_ORIGIN_RULE,
      3, "no" },
    { R "action = AUTO\n", F_ACTION, POLICY_AUTO, PK_ACTION,
      POLICY_ORIGIN_RULE, 3, "auto" },
    { R "alpn_protocols = h2 , http/1.1\n", F_ALPN_LEN, 12,
      PK_ALPN_PROTOCOLS, POLICY_ORIGIN_RULE, 3, "h2,http/1.1" },
    { R "min_version = TLSv1.3\n", F_MIN_VERSION, TLS1_3_VERSION,
      PK_MIN_VERSION, POLICY_ORIGIN_RULE, 3, "TLSv1_3" },
    { R "version = TLSv1_2\n", F_MAX_VERSION, TLS1_2_VERSION, PK_VERSION,
      POLICY_ORIGIN_RULE, 3, "TLSv1_2" },
    { "[r]\nconnect = :443, :465 ,:993\n\nconnect = Example.com *.Foo.org\n",
      F_NPATTERNS, 5, PK_CONNECT, POLICY_ORIGIN_RULE, 2,
      ":443 :465 :993 example.com *.foo.org" },
    { "[r]\nconnect = 10.1.2.3/8:80-81 [::ffff:1.2.3.4]:* *:*\n", F_NPATTERNS,
      3, PK_CONNECT, POLICY_ORIGIN_RULE, 2, "10.0.0.0/8:80-81 1.2.3.4 *" },
    { R "fingerprint = sha1$" HEX20 ",sha1$" HEX20 "\n\nfingerprint = "
      "sha256$" HEX32 "\n", F_NFINGERPRINTS, 3, PK_FINGERPRINT,
      POLICY_ORIGIN_RULE, 3,
      "sha1$" HEX20 " sha1$" HEX20 " sha256$" HEX32 },

    /* Inheritance from [defaults], overridden by the rule. */
    { D "security_level = 3\n" R, F_SECURITY_LEVEL, 3, PK_SECURITY_LEVEL,
      POLICY_ORIGIN_DEFAULTS, 2, "3" },
    { D "security_level = 3\n" R "security_level = 4\n", F_SECURITY_LEVEL, 4,
      PK_SECURITY_LEVEL, POLICY_ORIGIN_RULE, 5, "4" },
    { R D "security_level = 3\n", F_SECURITY_LEVEL, 3, PK_SECURITY_LEVEL,
      POLICY_ORIGIN_DEFAULTS, 4, "3" },
    { "[listen-defaults]\nsecurity_level = 3\n" R, F_SECURITY_LEVEL, 2,
      PK_SECURITY_LEVEL, POLICY_ORIGIN_BUILTIN, 0, NULL },
    { D "verify_mode = none\n" R, F_OCSP_MODE, POLICY_OCSP_NO_STAPLE,
      PK_VERIFY_MODE, POLICY_ORIGIN_DEFAULTS, 2, "none" },
    { D "action = deny\n" R, F_ACTION, POLICY_DENY, PK_ACTION,
      POLICY_ORIGIN_DEFAULTS, 2, "deny" },
    { D "fingerprint = sha1$" HEX20 " sha256$" HEX32 "\n" R, F_NFINGERPRINTS,
      2, PK_FINGERPRINT, POLICY_ORIGIN_DEFAULTS, 2,
      "sha1$" HEX20 " sha256$" HEX32 },
    /* The rule's fingerprints replace the defaults', not add to them. */
    { D "fingerprint = sha1$" HEX20 " sha256$" HEX32 "\n" R
      "fingerprint = sha256$" HEX32 "\n", F_NFINGERPRINTS, 1, PK_FINGERPRINT,
      POLICY_ORIGIN_RULE, 5, "sha256$" HEX32 },
    { D "version = TLSv1_3\n" R "min_version = TLSv1_2\n", F_MIN_VERSION,
      TLS1_2_VERSION, PK_VERSION, POLICY_ORIGIN_DEFAULTS, 2, "TLSv1_3" },
    { D "version = TLSv1_3\n" R "min_version = TLSv1_2\n", F_MAX_VERSION,
      TLS1_3_VERSION, PK_MIN_VERSION, POLICY_ORIGIN_RULE, 5, "TLSv1_2" },
};

static const struct policy_rule *
rule_named(const struct policy *p, const char *rule)
{
    size_t i;

    for (i = 0; i < p->nrules; i++)
        if (strcmp(p->rules[i].name, rule) == 0)
            return &p->rules[i];
    return NULL;
}

static void
test_field_rows(void)
{
    char err[1024];
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(field_rows); i++) {
        const struct field_row *row = &field_rows[i];
        const struct policy_rule *r;
        struct policy *p;

        unit_row("field row %zu: %s", i, row->text);
        p = policy_parse(row->text, strlen(row->text), name, err,
                         sizeof(err));
        if (!CHECK_MSG(p != NULL, "unexpected error: %s", err))
            continue;
        if (CHECK((r = rule_named(p, "r")) != NULL)) {
            CHECK_INT(field_value(r, row->field), row->want);
            CHECK_INT(r->origin[row->key], row->origin);
            CHECK_INT(r->value_line[row->key], row->line);
            CHECK_STR(r->value[row->key], row->value);
            CHECK_STR(r->file, "t.conf");
        }
        policy_free(p);
    }
    unit_row("%s", "");
}

/* String fields and the odd ones out. */
static void
test_strings(void)
{
    static const char text[] =
        "[global]\n"
        "log = \"/var/log/tls shim.log\"\n"
        "debug = 2\n"
        "uncovered = refuse\n"
        "default_action = deny\n"
        "[defaults]\n"
        "ca_file = /ca.pem\n"
        "[r]\n"
        "connect = :443\n"
        "session_key = \"a \\\"b\\\" \\\\ c # d\"\n"
        "hostname = \"\"\n"
        "verifycn_scheme = www\n"
        "verifycn_name = [2001:DB8::1]\n"
        "cipher_list = HIGH;x # no: see below\n";
    static const char text2[] =
        "[r]\n"
        "connect = :443\n"
        "hostname = WWW.Example.com.\n"
        "verifycn_name = Host.Example\n"
        "alpn_protocols = h2,http/1.1\n"
        "cert_file = /c.pem\n"
        "key_file = /k.pem\n"
        "passwd_file = \"/p w\"\n"
        "fingerprint = SHA1$00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:"
        "00:11:22:33\n";
    static const unsigned char alpn[] = "\002h2\010http/1.1";
    char err[1024];
    const struct policy_rule *r;
    struct policy *p;

    unit_row("strings");
    /* A ';' is no comment after a value: the cipher string keeps it and
     * is then refused for its characters. */
    p = policy_parse(text, strlen(text), name, err, sizeof(err));
    CHECK(p == NULL);
    CHECK(strstr(err, "t.conf:14: bad value \"HIGH;x\"") == err);
    policy_free(p);

    p = policy_parse(text, strlen(text) - strlen("cipher_list = HIGH;x # no: "
                     "see below\n"), name, err, sizeof(err));
    if (CHECK_MSG(p != NULL, "error: %s", err)) {
        CHECK_STR(p->global.log, "/var/log/tls shim.log");
        CHECK_INT(p->global.debug, 2);
        CHECK_INT(p->global.uncovered, POLICY_UNCOVERED_REFUSE);
        CHECK_INT(p->global.default_action, POLICY_DENY);
        CHECK_INT(p->global.default_listen_action, POLICY_PLAIN);
        CHECK_STR(p->global.report, NULL);
        CHECK_INT(p->global.keylog, 0);
        CHECK_INT(p->embedded, 0);
        CHECK_STR(p->file, "t.conf");
        r = &p->rules[0];
        CHECK_STR(r->session_key, "a \"b\" \\ c # d");
        CHECK_STR(r->hostname, "");
        CHECK_STR(r->verifycn_scheme, "http");
        CHECK_STR(r->verifycn_name, "2001:DB8::1");
        CHECK_STR(r->ca_file, "/ca.pem");
        CHECK_INT(r->ca_system, 0);
        CHECK_STR(r->client_ca_file, NULL);
        CHECK_INT(r->line, 8);
        CHECK_INT(r->index, 0);
        CHECK_INT(r->role, POLICY_ROLE_CLIENT);
    }
    policy_free(p);

    p = policy_parse(text2, strlen(text2), name, err, sizeof(err));
    if (CHECK_MSG(p != NULL, "error: %s", err)) {
        r = &p->rules[0];
        CHECK_STR(r->hostname, "www.example.com");
        CHECK_STR(r->verifycn_name, "host.example");
        CHECK_INT(r->alpn_wire_len, sizeof(alpn) - 1);
        CHECK(r->alpn_wire != NULL &&
              memcmp(r->alpn_wire, alpn, sizeof(alpn) - 1) == 0);
        CHECK_STR(r->cert_file, "/c.pem");
        CHECK_STR(r->key_file, "/k.pem");
        CHECK_STR(r->passwd_file, "/p w");
        CHECK_INT(r->nfingerprints, 1);
        if (r->nfingerprints == 1) {
            CHECK_STR(r->fingerprints[0].algo, "sha1");
            CHECK_INT(r->fingerprints[0].md_len, 20);
            CHECK_INT(r->fingerprints[0].md[0], 0x00);
            CHECK_INT(r->fingerprints[0].md[10], 0xaa);
            CHECK_INT(r->fingerprints[0].md[19], 0x33);
        }
    }
    policy_free(p);
    unit_row("%s", "");
}

/* --- bounds on untrusted input ---------------------------------------- */

static char *
repeat_text(const char *head, const char *piece, size_t n, const char *tail)
{
    size_t len = strlen(head) + strlen(piece) * n + strlen(tail) + 1, i;
    char *s = malloc(len), *end;

    if (s == NULL)
        return NULL;
    end = stpcpy(s, head);
    for (i = 0; i < n; i++)
        end = stpcpy(end, piece);
    stpcpy(end, tail);
    return s;
}

static void
expect_parse(const char *what, const char *text, size_t len, int ok,
             const char *err_start)
{
    char err[1024];
    struct policy *p;

    unit_row("%s", what);
    p = policy_parse(text, len, name, err, sizeof(err));
    if (ok) {
        CHECK_MSG(p != NULL, "unexpected error: %s", err);
    } else {
        CHECK(p == NULL);
        CHECK_MSG(strncmp(err, err_start, strlen(err_start)) == 0,
                  "error \"%s\" does not start with \"%s\"", err, err_start);
    }
    policy_free(p);
    unit_row("%s", "");
}

static void
test_limits(void)
{
    char *s, line[8192];
    size_t n;

    /* Line length: 4096 bytes are fine, 4097 are not. */
    memset(line, 0, sizeof(line));
    n = (size_t)snprintf(line, sizeof(line), "[r]\nconnect = :443\n# ");
    memset(line + n, 'x', 4096 - 2);
    strcat(line, "\n");
    expect_parse("line of 4096 bytes", line, strlen(line), 1, NULL);
    memset(line + n, 'x', 4096 - 1);
    strcat(line, "\n");
    expect_parse("line of 4097 bytes", line, strlen(line), 0,
                 "t.conf:3: line is longer than 4096 bytes");

    /* NUL bytes are refused, not taken as the end of the text. */
    expect_parse("NUL byte", "[r]\nconnect = :443\nac\0tion = tls\n", 33, 0,
                 "t.conf:3: control character (0x00)");

    /* File size. */
    n = 1024 * 1024 + 1;
    if ((s = malloc(n)) != NULL) {
        memset(s, '\n', n);
        expect_parse("1 MiB + 1", s, n, 0,
                     "t.conf: policy is larger than 1 MiB");
        expect_parse("1 MiB", s, n - 1, 1, NULL);
        free(s);
    }

    /* Patterns per rule: 1024 fine, 1025 not, also over several lines. */
    s = repeat_text("[r]\nconnect =", " :1", 1024, "\n");
    if (s != NULL)
        expect_parse("1024 patterns", s, strlen(s), 1, NULL);
    free(s);
    s = repeat_text("[r]\nconnect =", " :1", 1025, "\n");
    if (s != NULL)
        expect_parse("1025 patterns", s, strlen(s), 0,
                     "t.conf:2: too many values for connect in [r] (at "
                     "most 1024)");
    free(s);
    s = repeat_text("[r]\n", "connect = :1 :2\n", 513, "");
    if (s != NULL)
        expect_parse("1026 patterns on 513 lines", s, strlen(s), 0,
                     "t.conf:514: too many values for connect");
    free(s);

    /* Rules: 4096 fine, 4097 not. */
    {
        size_t cap = 4097 * 40, len = 0, i;
        char *t = malloc(cap);

        if (t != NULL) {
            for (i = 0; i < 4097; i++)
                len += (size_t)snprintf(t + len, cap - len,
                                        "[r%zu]\nconnect = :%zu\n", i,
                                        i % 65535 + 1);
            expect_parse("4097 rules", t, len, 0,
                         "t.conf:8193: too many rules (at most 4096)");
            len = 0;
            for (i = 0; i < 4096; i++)
                len += (size_t)snprintf(t + len, cap - len,
                                        "[r%zu]\nconnect = :%zu\n", i,
                                        i % 65535 + 1);
            expect_parse("4096 rules", t, len, 1, NULL);
            free(t);
        }
    }

    /* DNS name length: 253 characters fine, 254 not. */
    {
        char host[300], text[400];

        memset(host, 0, sizeof(host));
        for (n = 0; n < 253; n++)
            host[n] = n % 50 == 49 ? '.' : 'a';
        snprintf(text, sizeof(text), "[r]\nconnect = %s\n", host);
        expect_parse("253-character name", text, strlen(text), 1, NULL);
        host[253] = 'a';
        snprintf(text, sizeof(text), "[r]\nconnect = %s\n", host);
        expect_parse("254-character name", text, strlen(text), 0,
                     "t.conf:2: DNS name");
    }

    /* session_key length and a long ALPN protocol. */
    {
        char text[1024];

        n = (size_t)snprintf(text, sizeof(text),
                             "[r]\nconnect = :1\nsession_key = ");
        memset(text + n, 'k', 256);
        text[n + 256] = '\0';
        expect_parse("256-byte session_key", text, strlen(text), 0,
                     "t.conf:3: session_key is longer than 255 bytes");
        text[n + 255] = '\0';
        expect_parse("255-byte session_key", text, strlen(text), 1, NULL);
        n = (size_t)snprintf(text, sizeof(text),
                             "[r]\nconnect = :1\nalpn_protocols = h2,");
        memset(text + n, 'p', 256);
        text[n + 256] = '\0';
        expect_parse("256-byte ALPN protocol", text, strlen(text), 0,
                     "t.conf:3: bad alpn_protocols");
        text[n + 255] = '\0';
        expect_parse("255-byte ALPN protocol", text, strlen(text), 1, NULL);
    }
}

/* --- matching --------------------------------------------------------- */

static const char match_policy[] =
    "[deny-db]\n"
    "connect = 10.1.2.3:5432\n"
    "action = deny\n"
    "[lan]\n"
    "connect = 10.0.0.0/8:443 [fd00::]/8:443\n"
    "[v6one]\n"
    "connect = [2001:db8::1]:993\n"
    "[api]\n"
    "connect = api.example.com:443\n"
    "[wild]\n"
    "connect = *.example.org:443 *.example.net:8443\n"
    "[ports]\n"
    "connect = :8000-8099\n"
    "action = plain\n"
    "[own]\n"
    "connect = resolved.example.net:8443\n"
    "[own2]\n"
    "connect = other.example.net:8443 :7000\n"
    "[any443]\n"
    "connect = :443\n"
    "action = auto\n";

/* What the rules' own resolution answers, and how often it was asked. */
struct resolver {
    const char *host[2];
    const char *ip;
    int calls;
    int saw_family;
    char asked[512];
};

static int
fake_resolve(void *arg, const char *host, const struct sockaddr *addr)
{
    struct resolver *res = arg;
    char ip[INET6_ADDRSTRLEN] = "";
    size_t i;

    res->calls++;
    res->saw_family = addr->sa_family;
    snprintf(res->asked + strlen(res->asked),
             sizeof(res->asked) - strlen(res->asked), "%s ", host);
    if (addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, ip,
                  sizeof(ip));
    else if (addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr,
                  ip, sizeof(ip));
    for (i = 0; i < 2; i++)
        if (res->host[i] != NULL && strcmp(res->host[i], host) == 0 &&
            res->ip != NULL && strcmp(res->ip, ip) == 0)
            return 1;
    return 0;
}

static void
make_addr(const char *ip, unsigned port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, ip, &sin6->sin6_addr);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, ip, &sin->sin_addr);
    }
}

struct match_row {
    const char *ip;
    unsigned port;
    const char *name;      /* the program's lookup */
    int use_resolve;
    const char *res_host[2];
    const char *res_ip;
    const char *rule;      /* expected, NULL: none */
    const char *matched;   /* expected *matched_name */
    int calls;             /* expected resolve calls; -1: don't care */
};

static const struct match_row match_rows[] = {
    /* Addresses and CIDR, first match wins. */
    { "10.1.2.3", 5432, NULL, 0, { NULL, NULL }, NULL, "deny-db", NULL, 0 },
    { "10.1.2.3", 443, NULL, 0, { NULL, NULL }, NULL, "lan", NULL, 0 },
    { "10.200.0.1", 443, NULL, 0, { NULL, NULL }, NULL, "lan", NULL, 0 },
    { "10.200.0.1", 443, "www.example.com", 0, { NULL, NULL }, NULL, "lan",
      NULL, 0 },
    { "11.0.0.1", 443, NULL, 0, { NULL, NULL }, NULL, "any443", NULL, 0 },
    { "10.1.2.3", 5433, NULL, 0, { NULL, NULL }, NULL, NULL, NULL, 0 },
    /* IPv4-mapped IPv6 is IPv4. */
    { "::ffff:10.1.2.3", 443, NULL, 0, { NULL, NULL }, NULL, "lan", NULL, 0 },
    { "::ffff:10.1.2.3", 5432, NULL, 0, { NULL, NULL }, NULL, "deny-db", NULL,
      0 },
    { "fd00::5", 443, NULL, 0, { NULL, NULL }, NULL, "lan", NULL, 0 },
    { "fe80::1", 443, NULL, 0, { NULL, NULL }, NULL, "any443", NULL, 0 },
    { "2001:db8::1", 993, NULL, 0, { NULL, NULL }, NULL, "v6one", NULL, 0 },
    { "2001:db8::2", 993, NULL, 0, { NULL, NULL }, NULL, NULL, NULL, 0 },
    { "::ffff:32.1.13.184", 993, NULL, 0, { NULL, NULL }, NULL, NULL, NULL,
      0 },
    /* Names from the program's lookup. */
    { "93.184.216.34", 443, "api.example.com", 0, { NULL, NULL }, NULL, "api",
      "api.example.com", 0 },
    { "93.184.216.34", 443, "API.Example.COM.", 0, { NULL, NULL }, NULL,
      "api", "API.Example.COM.", 0 },
    { "93.184.216.34", 80, "api.example.com", 0, { NULL, NULL }, NULL, NULL,
      NULL, 0 },
    { "93.184.216.34", 443, "a.example.org", 0, { NULL, NULL }, NULL, "wild",
      "a.example.org", 0 },
    { "93.184.216.34", 443, "a.b.c.example.org", 0, { NULL, NULL }, NULL,
      "wild", "a.b.c.example.org", 0 },
    /* Not the apex, not look-alikes: the catch-all takes them. */
    { "93.184.216.34", 443, "example.org", 0, { NULL, NULL }, NULL, "any443",
      "example.org", 0 },
    { "93.184.216.34", 443, "xexample.org", 0, { NULL, NULL }, NULL,
      "any443", "xexample.org", 0 },
    { "93.184.216.34", 443, "a.example.org.evil.com", 0, { NULL, NULL },
      NULL, "any443", "a.example.org.evil.com", 0 },
    { "93.184.216.34", 443, "api.example.com.evil.com", 0, { NULL, NULL },
      NULL, "any443", "api.example.com.evil.com", 0 },
    /* Port ranges. */
    { "1.2.3.4", 8000, NULL, 0, { NULL, NULL }, NULL, "ports", NULL, 0 },
    { "1.2.3.4", 8099, NULL, 0, { NULL, NULL }, NULL, "ports", NULL, 0 },
    { "1.2.3.4", 8100, NULL, 0, { NULL, NULL }, NULL, NULL, NULL, 0 },
    { "1.2.3.4", 7999, NULL, 0, { NULL, NULL }, NULL, NULL, NULL, 0 },
    { "1.2.3.4", 80, NULL, 0, { NULL, NULL }, NULL, NULL, NULL, 0 },
    { "1.2.3.4", 7000, NULL, 0, { NULL, NULL }, NULL, "own2", NULL, 0 },
    /* Pass 2: the rules' own resolution, only when nothing else matched,
     * only for names without wildcard, only where the port fits. */
    { "1.2.3.4", 8443, NULL, 1, { "resolved.example.net", NULL }, "1.2.3.4",
      "own", "resolved.example.net", 1 },
    { "1.2.3.4", 8443, "elsewhere.example", 1,
      { "resolved.example.net", NULL }, "1.2.3.4", "own",
      "resolved.example.net", 1 },
    { "::ffff:1.2.3.4", 8443, NULL, 1, { "resolved.example.net", NULL },
      "1.2.3.4", "own", "resolved.example.net", 1 },
    { "1.2.3.4", 8443, NULL, 1, { "other.example.net", NULL }, "1.2.3.4",
      "own2", "other.example.net", 2 },
    { "1.2.3.4", 8443, NULL, 1,
      { "other.example.net", "resolved.example.net" }, "1.2.3.4", "own",
      "resolved.example.net", 1 },
    { "1.2.3.4", 8443, NULL, 1, { "resolved.example.net", NULL }, "5.6.7.8",
      NULL, NULL, 2 },
    { "1.2.3.4", 8443, NULL, 0, { "resolved.example.net", NULL }, "1.2.3.4",
      NULL, NULL, 0 },
    { "1.2.3.4", 9999, NULL, 1, { "resolved.example.net", NULL }, "1.2.3.4",
      NULL, NULL, 0 },
    { "10.1.2.3", 443, NULL, 1, { "api.example.com", NULL }, "10.1.2.3",
      "lan", NULL, 0 },
    { "1.2.3.4", 443, NULL, 1, { "api.example.com", NULL }, "1.2.3.4",
      "any443", NULL, 0 },
    { "1.2.3.4", 8443, "a.example.net", 1, { "resolved.example.net", NULL },
      "1.2.3.4", "wild", "a.example.net", 0 },
};

static void
test_match_rows(void)
{
    char err[1024];
    struct policy *p;
    size_t i;

    p = policy_parse(match_policy, strlen(match_policy), name, err,
                     sizeof(err));
    if (!CHECK_MSG(p != NULL, "match policy: %s", err))
        return;
    for (i = 0; i < TLSSHIM_NELEMS(match_rows); i++) {
        const struct match_row *row = &match_rows[i];
        struct resolver res;
        struct sockaddr_storage ss;
        const struct policy_rule *r;
        const char *matched = "unset";

        unit_row("match %s:%u name=%s resolve=%d", row->ip, row->port,
                 row->name ? row->name : "-", row->use_resolve);
        memset(&res, 0, sizeof(res));
        res.host[0] = row->res_host[0];
        res.host[1] = row->res_host[1];
        res.ip = row->res_ip;
        make_addr(row->ip, row->port, &ss);
        r = policy_match_connect(p, (struct sockaddr *)&ss, row->name,
                                 row->use_resolve ? fake_resolve : NULL,
                                 &res, &matched);
        CHECK_STR(r != NULL ? r->name : NULL, row->rule);
        CHECK_STR(matched, row->matched);
        if (row->calls >= 0)
            CHECK_INT(res.calls, row->calls);
        /* Wildcards are never resolved; mapped addresses arrive as IPv4. */
        CHECK_MSG(strstr(res.asked, "example.org") == NULL &&
                  strstr(res.asked, "*") == NULL, "asked %s", res.asked);
        if (res.calls > 0)
            CHECK_INT(res.saw_family, strchr(row->ip, '.') != NULL ?
                      AF_INET : AF_INET6);
    }
    unit_row("%s", "");

    /* A NULL matched_name pointer and odd addresses are fine. */
    {
        struct sockaddr_storage ss;
        struct sockaddr un;

        make_addr("10.1.2.3", 443, &ss);
        CHECK(policy_match_connect(p, (struct sockaddr *)&ss, NULL, NULL,
                                   NULL, NULL) == &p->rules[1]);
        memset(&un, 0, sizeof(un));
        un.sa_family = AF_UNIX;
        CHECK(policy_match_connect(p, &un, "api.example.com", NULL, NULL,
                                   NULL) == NULL);
        CHECK(policy_match_connect(NULL, (struct sockaddr *)&ss, NULL, NULL,
                                   NULL, NULL) == NULL);
    }
    policy_free(p);
}

struct name_row {
    const char *pattern;
    const char *host;
    int want;
};

static const struct name_row name_rows[] = {
    { "example.com", "example.com", 1 },
    { "example.com", "EXAMPLE.Com", 1 },
    { "example.com", "example.com.", 1 },
    { "Example.com.", "example.com", 1 },
    { "example.com", "www.example.com", 0 },
    { "example.com", "example.co", 0 },
    { "example.com", "xexample.com", 0 },
    { "example.com", "example.com..", 0 },
    { "example.com", "", 0 },
    { "example.com", NULL, 0 },
    { "*.example.com", "a.example.com", 1 },
    { "*.example.com", "a.b.example.com", 1 },
    { "*.example.com", "A.EXAMPLE.COM", 1 },
    { "*.example.com", "a.example.com.", 1 },
    { "*.example.com", "example.com", 0 },
    { "*.example.com", "example.com.", 0 },
    { "*.example.com", ".example.com", 0 },
    { "*.example.com", "xexample.com", 0 },
    { "*.example.com", "a..example.com", 0 },
    { "*.example.com", "a.example.com.evil", 0 },
    { "*.example.com", "a.example.co", 0 },
    { "*.example.com", "com", 0 },
    { "*.example.com", "", 0 },
    { "*.example.com", NULL, 0 },
    { "10.0.0.1", "10.0.0.1", 0 },
    { ":443", "example.com", 0 },
};

static void
test_name_rows(void)
{
    char text[256], err[1024];
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(name_rows); i++) {
        const struct name_row *row = &name_rows[i];
        struct policy *p;

        unit_row("name %s vs %s", row->pattern, row->host ? row->host :
                 "NULL");
        snprintf(text, sizeof(text), "[r]\nconnect = %s\n", row->pattern);
        p = policy_parse(text, strlen(text), name, err, sizeof(err));
        if (CHECK_MSG(p != NULL, "error: %s", err))
            CHECK_INT(policy_name_matches(&p->rules[0].patterns[0],
                                          row->host), row->want);
        policy_free(p);
    }
    CHECK_INT(policy_name_matches(NULL, "example.com"), 0);
    unit_row("%s", "");
}

/*
 * Listen rules are refused by the parser until the server side lands, so
 * the listen matchers are tested on connect rules turned into listen rules.
 */
struct listen_row {
    int may;          /* 1: policy_listen_may_match, 0: policy_match_listen */
    const char *ip;
    unsigned port;
    const char *rule; /* match_listen: expected rule */
    int want;         /* may_match: expected answer */
};

static const struct listen_row listen_rows[] = {
    { 0, "10.0.0.1", 443, "l1", 0 },
    { 0, "10.0.0.2", 443, NULL, 0 },
    { 0, "10.0.0.1", 80, NULL, 0 },
    { 0, "::1", 8443, "l1", 0 },
    { 0, "::2", 8443, NULL, 0 },
    { 0, "::ffff:10.0.0.1", 443, "l1", 0 },
    { 0, "1.2.3.4", 993, "l2", 0 },
    { 0, "::1", 993, "l2", 0 },
    { 0, "192.168.7.9", 25, "l3", 0 },
    { 0, "192.168.8.9", 25, NULL, 0 },
    { 1, "0.0.0.0", 443, NULL, 1 },
    { 1, "::", 443, NULL, 1 },
    { 1, "::", 8443, NULL, 1 },
    { 1, "0.0.0.0", 80, NULL, 0 },
    { 1, "::", 80, NULL, 0 },
    { 1, "10.0.0.1", 443, NULL, 1 },
    { 1, "10.0.0.2", 443, NULL, 0 },
    { 1, "10.0.0.2", 993, NULL, 1 },
    { 1, "::1", 8443, NULL, 1 },
    { 1, "::2", 8443, NULL, 0 },
    { 1, "::ffff:10.0.0.1", 443, NULL, 1 },
    { 1, "192.168.7.1", 25, NULL, 1 },
    { 1, "192.168.6.1", 25, NULL, 0 },
};

static void
test_listen_rows(void)
{
    static const char text[] =
        "[l1]\nconnect = 10.0.0.1:443 [::1]:8443\n"
        "[l2]\nconnect = :993\n"
        "[l3]\nconnect = 192.168.7.0/24:25\n";
    char err[1024];
    struct policy *p;
    size_t i;

    p = policy_parse(text, strlen(text), name, err, sizeof(err));
    if (!CHECK_MSG(p != NULL, "listen policy: %s", err))
        return;
    /* No listen rule yet: nothing matches an accepted connection. */
    {
        struct sockaddr_storage ss;

        make_addr("10.0.0.1", 443, &ss);
        CHECK(policy_match_listen(p, (struct sockaddr *)&ss) == NULL);
        CHECK_INT(policy_listen_may_match(p, (struct sockaddr *)&ss), 0);
    }
    for (i = 0; i < p->nrules; i++)
        p->rules[i].role = POLICY_ROLE_SERVER;
    for (i = 0; i < TLSSHIM_NELEMS(listen_rows); i++) {
        const struct listen_row *row = &listen_rows[i];
        struct sockaddr_storage ss;

        unit_row("listen %s %s:%u", row->may ? "may_match" : "match",
                 row->ip, row->port);
        make_addr(row->ip, row->port, &ss);
        if (row->may) {
            CHECK_INT(policy_listen_may_match(p, (struct sockaddr *)&ss),
                      row->want);
        } else {
            const struct policy_rule *r =
                policy_match_listen(p, (struct sockaddr *)&ss);
            CHECK_STR(r != NULL ? r->name : NULL, row->rule);
        }
        /* Server rules never match outbound connections. */
        CHECK(policy_match_connect(p, (struct sockaddr *)&ss, NULL, NULL,
                                   NULL, NULL) == NULL);
    }
    unit_row("%s", "");
    policy_free(p);
}

/* --- writing ---------------------------------------------------------- */

static void
compare_rules(const struct policy_rule *a, const struct policy_rule *b)
{
    size_t i;

    CHECK_STR(a->name, b->name);
    CHECK_INT(a->role, b->role);
    CHECK_INT(a->index, b->index);
    if (CHECK_INT(a->npatterns, b->npatterns)) {
        for (i = 0; i < a->npatterns; i++) {
            const struct policy_pattern *x = &a->patterns[i];
            const struct policy_pattern *y = &b->patterns[i];
            CHECK_INT(x->kind, y->kind);
            CHECK(memcmp(x->addr, y->addr, sizeof(x->addr)) == 0);
            CHECK_INT(x->prefix, y->prefix);
            CHECK_STR(x->name, y->name);
            CHECK_INT(x->wildcard, y->wildcard);
            CHECK_INT(x->port_lo, y->port_lo);
            CHECK_INT(x->port_hi, y->port_hi);
        }
    }
    CHECK_INT(a->action, b->action);
    CHECK_INT(a->verify_mode, b->verify_mode);
    CHECK_STR(a->ca_file, b->ca_file);
    CHECK_STR(a->ca_path, b->ca_path);
    CHECK_INT(a->ca_system, b->ca_system);
    CHECK_STR(a->verifycn_scheme, b->verifycn_scheme);
    CHECK_STR(a->verifycn_name, b->verifycn_name);
    CHECK_INT(a->verifycn_publicsuffix, b->verifycn_publicsuffix);
    if (CHECK_INT(a->nfingerprints, b->nfingerprints)) {
        for (i = 0; i < a->nfingerprints; i++) {
            CHECK_STR(a->fingerprints[i].algo, b->fingerprints[i].algo);
            CHECK_INT(a->fingerprints[i].md_len, b->fingerprints[i].md_len);
            CHECK(memcmp(a->fingerprints[i].md, b->fingerprints[i].md,
                         a->fingerprints[i].md_len) == 0);
        }
    }
    CHECK_INT(a->npubkey_pins, b->npubkey_pins);
    CHECK_INT(a->check_crl, b->check_crl);
    CHECK_STR(a->crl_file, b->crl_file);
    CHECK_INT(a->ocsp_mode, b->ocsp_mode);
    CHECK_INT(a->ocsp_timeout, b->ocsp_timeout);
    CHECK_INT(a->security_level, b->security_level);
    CHECK_STR(a->hostname, b->hostname);
    CHECK_STR(a->cert_file, b->cert_file);
    CHECK_STR(a->key_file, b->key_file);
    CHECK_STR(a->passwd_file, b->passwd_file);
    CHECK_INT(a->nsni_certs, b->nsni_certs);
    CHECK_STR(a->client_ca_file, b->client_ca_file);
    CHECK_STR(a->ticket_key_file, b->ticket_key_file);
    CHECK_STR(a->auto_ca_dir, b->auto_ca_dir);
    CHECK_INT(a->min_version, b->min_version);
    CHECK_INT(a->max_version, b->max_version);
    CHECK_STR(a->cipher_list, b->cipher_list);
    CHECK_STR(a->ciphersuites, b->ciphersuites);
    CHECK_STR(a->ecdh_curve, b->ecdh_curve);
    CHECK_INT(a->honor_cipher_order, b->honor_cipher_order);
    if (CHECK_INT(a->alpn_wire_len, b->alpn_wire_len) && a->alpn_wire_len)
        CHECK(memcmp(a->alpn_wire, b->alpn_wire, a->alpn_wire_len) == 0);
    CHECK_INT(a->session_cache_size, b->session_cache_size);
    CHECK_STR(a->session_key, b->session_key);
    CHECK_INT(a->handshake_timeout, b->handshake_timeout);
    CHECK_INT(a->strict_eof, b->strict_eof);
    CHECK_STR(a->starttls, b->starttls);
    CHECK_INT(a->starttls_required, b->starttls_required);
    CHECK_STR(a->redirect, b->redirect);
    CHECK_INT(a->ktls, b->ktls);
}

static char *
write_to_string(const struct policy *p, void (*fn)(FILE *,
                const struct policy *, const struct policy_rule *),
                const struct policy_rule *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (f == NULL)
        return NULL;
    if (fn != NULL)
        fn(f, p, r);
    else
        policy_write(f, p);
    fclose(f);
    return buf;
}

static void
round_trip(const char *what, const char *text)
{
    char err[1024], err2[1024];
    struct policy *a, *b = NULL;
    char *out = NULL;
    size_t i;

    unit_row("round trip: %s", what);
    a = policy_parse(text, strlen(text), name, err, sizeof(err));
    if (!CHECK_MSG(a != NULL, "error: %s", err))
        goto done;
    if (!CHECK((out = write_to_string(a, NULL, NULL)) != NULL))
        goto done;
    b = policy_parse(out, strlen(out), "written", err2, sizeof(err2));
    if (!CHECK_MSG(b != NULL, "written policy does not parse: %s\n%s", err2,
                   out))
        goto done;
    CHECK_INT(b->global.default_action, a->global.default_action);
    CHECK_INT(b->global.default_listen_action,
              a->global.default_listen_action);
    CHECK_STR(b->global.log, a->global.log);
    CHECK_INT(b->global.debug, a->global.debug);
    CHECK_STR(b->global.report, a->global.report);
    CHECK_INT(b->global.report_open, a->global.report_open);
    CHECK_INT(b->global.keylog, a->global.keylog);
    CHECK_INT(b->global.uncovered, a->global.uncovered);
    if (CHECK_INT(b->nrules, a->nrules))
        for (i = 0; i < a->nrules; i++)
            compare_rules(&a->rules[i], &b->rules[i]);
done:
    free(out);
    policy_free(a);
    policy_free(b);
    unit_row("%s", "");
}

static void
test_write(void)
{
    static const char rich[] =
        "[global]\n"
        "default_action = deny\n"
        "log = \"/var/log/tls shim.log\"\n"
        "debug = 2\n"
        "uncovered = refuse\n"
        "keylog = no\n"
        "\n"
        "[defaults]\n"
        "ca_file = \"/etc/ssl/corp ca.pem\"\n"
        "security_level = 3\n"
        "fingerprint = sha1$" HEX20 "\n"
        "\n"
        "[api]\n"
        "connect = api.example.com:443, *.api.example.com\n"
        "connect = [2001:db8::]/32:8443 10.1.2.3/8\n"
        "verify_mode = peer\n"
        "verifycn_scheme = www\n"
        "verifycn_name = API.example.com\n"
        "hostname = \"\"\n"
        "session_key = \"a \\\"quoted\\\" \\\\ key # not a comment\"\n"
        "alpn_protocols = h2, http/1.1\n"
        "version = TLSv1_2\n"
        "max_version = TLSv1_3\n"
        "cipher_list = ECDHE+AESGCM:!aNULL\n"
        "ciphersuites = TLS_AES_256_GCM_SHA384\n"
        "ecdh_curve = X25519:prime256v1\n"
        "ocsp_mode = no_staple\n"
        "ktls = no\n"
        "strict_eof = on\n"
        "cert_file = /etc/c.pem\n"
        "key_file = /etc/k.pem\n"
        "passwd_file = /etc/p\n"
        "session_cache_size = 0\n"
        "handshake_timeout = 5\n"
        "ocsp_timeout = 10\n"
        "\n"
        "[legacy]\n"
        "connect = :8000-8099 legacy.example.net\n"
        "security_level = 0\n"
        "version = SSLv23:!TLSv1_3\n"
        "verify_mode = none\n"
        "fingerprint = sha256$" HEX32 "\n"
        "ca_path = /etc/ssl/certs\n"
        "\n"
        "[mail]\n"
        "connect = mail.example.com:25 mail.example.com:587\n"
        "starttls = smtp\n"
        "starttls_required = no\n"
        "\n"
        "[block]\n"
        "connect = *\n"
        "action = deny\n";
    char err[1024];
    struct policy *p;
    char *out;

    round_trip("rich", rich);
    round_trip("minimal", R);
    /* a listen rule's starttls_required = no (its default) reads back */
    round_trip("listen", "[srv]\nlisten = :8443\ncert_file = /etc/c.pem\n");
    round_trip("empty", "");
    round_trip("embedded", policy_default_text);
    round_trip("global only", "[global]\ndebug = 0\nlog = stderr\n");

    /* The text itself: defaults are marked, refused keys stay comments. */
    unit_row("write text");
    p = policy_parse(rich, strlen(rich), name, err, sizeof(err));
    if (CHECK_MSG(p != NULL, "error: %s", err) &&
        CHECK((out = write_to_string(p, NULL, NULL)) != NULL)) {
        CHECK_MSG(strstr(out, "\n[global]\ndefault_action = deny\n") != NULL,
                  "%s", out);
        CHECK_MSG(strstr(out, "\n[api]\nconnect = api.example.com:443 "
                         "*.api.example.com [2001:db8::]/32:8443 "
                         "10.0.0.0/8\n") != NULL, "%s", out);
        CHECK_MSG(strstr(out, "\nsecurity_level = 3") != NULL &&
                  strstr(out, "# [defaults] line 11\n") != NULL, "%s", out);
        CHECK_MSG(strstr(out, "\nhandshake_timeout = 30") != NULL &&
                  strstr(out, "# default\n") != NULL, "%s", out);
        CHECK_MSG(strstr(out, "\nsession_key = \"a \\\"quoted\\\" \\\\ key # "
                         "not a comment\"\n") != NULL, "%s", out);
        CHECK_MSG(strstr(out, "\nhostname = \"\"\n") != NULL, "%s", out);
        CHECK_MSG(strstr(out, "\nstarttls_required = yes") != NULL &&
                  strstr(out, "# starttls_required") == NULL, "%s", out);
        CHECK_MSG(strstr(out, "\n[mail]\nconnect = mail.example.com:25 "
                         "mail.example.com:587\n") != NULL &&
                  strstr(out, "\nstarttls = smtp\n") != NULL &&
                  strstr(out, "\nstarttls_required = no\n") != NULL, "%s",
                  out);
        CHECK_MSG(strstr(out, "\nhonor_cipher_order") == NULL, "%s", out);
        CHECK_MSG(strstr(out, "\nmin_version = TLSv1_2") != NULL, "%s", out);
        free(out);
    }
    policy_free(p);
    unit_row("%s", "");
}

static void
test_explain(void)
{
    static const char text[] =
        "[defaults]\n"
        "security_level = 3\n"
        "[r]\n"
        "connect = :443\n"
        "verify_mode = none\n"
        "hostname = \"\"\n";
    char err[1024], *out = NULL;
    struct policy *p;

    unit_row("explain");
    p = policy_parse(text, strlen(text), name, err, sizeof(err));
    if (CHECK_MSG(p != NULL, "error: %s", err) &&
        CHECK((out = write_to_string(p, policy_explain, &p->rules[0])) !=
              NULL)) {
        CHECK_MSG(strstr(out, "connect = :443") != NULL &&
                  strstr(out, "(rule r line 4)\n") != NULL, "%s", out);
        CHECK_MSG(strstr(out, "verify_mode = none") != NULL &&
                  strstr(out, "(rule r line 5)\n") != NULL, "%s", out);
        CHECK_MSG(strstr(out, "\nsecurity_level = 3") != NULL &&
                  strstr(out, "([defaults] line 2)\n") != NULL, "%s", out);
        CHECK_MSG(strstr(out, "\nocsp_timeout = 5 ") != NULL &&
                  strstr(out, "(built-in default)\n") != NULL, "%s", out);
        CHECK_MSG(strstr(out, "\nocsp_mode = no_staple") != NULL, "%s", out);
        CHECK_MSG(strstr(out, "\ncert_file = (none)") != NULL, "%s", out);
        CHECK_MSG(strstr(out, "\nhostname = \"\" ") != NULL, "%s", out);
        CHECK_MSG(strstr(out, "listen =") == NULL, "%s", out);
        CHECK_MSG(strstr(out, "sni_cert =") == NULL, "%s", out);
        /* One line per applicable key. */
        {
            int lines = 0;
            const char *c;
            for (c = out; *c != '\0'; c++)
                lines += *c == '\n';
            CHECK_INT(lines, PK__COUNT - 1 - 5);
        }
    }
    free(out);
    policy_free(p);
    unit_row("%s", "");

    CHECK_STR(policy_action_name(POLICY_TLS), "tls");
    CHECK_STR(policy_action_name(POLICY_AUTO), "auto");
    CHECK_STR(policy_action_name(POLICY_ENFORCE), "enforce");
    CHECK_STR(policy_action_name(POLICY_PLAIN), "plain");
    CHECK_STR(policy_action_name(POLICY_DENY), "deny");
    CHECK_STR(policy_action_name(POLICY_AUDIT), "audit");
    CHECK_STR(policy_action_name((enum policy_action)42), "?");
    CHECK_STR(policy_key_name(PK_ACTION), "action");
    CHECK_STR(policy_key_name(PK_VERIFYCN_PUBLICSUFFIX),
              "verifycn_publicsuffix");
    CHECK_STR(policy_key_name(PK_KTLS), "ktls");
    CHECK_STR(policy_key_name(PK__COUNT), "?");
}

/* --- the embedded default --------------------------------------------- */

static void
test_embedded(void)
{
    static const unsigned ports[] = {
        443, 465, 563, 636, 853, 990, 992, 993, 994, 995, 5671, 6697, 8883,
    };
    static const unsigned other[] = { 80, 25, 110, 143, 8443, 1, 65535 };
    char err[1024];
    struct sockaddr_storage ss;
    struct policy *p;
    size_t i;

    unit_row("embedded default");
    p = policy_load(NULL, 1, err, sizeof(err));
    if (!CHECK_MSG(p != NULL, "embedded default: %s", err))
        return;
    CHECK_INT(p->embedded, 1);
    CHECK_STR(p->file, "(embedded default)");
    CHECK_INT(p->global.default_action, POLICY_PLAIN);
    CHECK_INT(p->global.default_listen_action, POLICY_PLAIN);
    CHECK_INT(p->has_enforce, 0);
    CHECK_INT(p->has_listen, 0);
    if (CHECK_INT(p->nrules, 1)) {
        const struct policy_rule *r = &p->rules[0];
        CHECK_STR(r->name, "implicit-tls");
        CHECK_INT(r->action, POLICY_AUTO);
        CHECK_INT(r->verify_mode, POLICY_VERIFY_PEER);
        CHECK_INT(r->ca_system, 1);
        CHECK_INT(r->ocsp_mode, POLICY_OCSP_TRY_STAPLE);
        CHECK_INT(r->min_version, TLS1_2_VERSION);
        CHECK_INT(r->npatterns, TLSSHIM_NELEMS(ports));
    }
    for (i = 0; i < TLSSHIM_NELEMS(ports); i++) {
        const struct policy_rule *r;
        const char *matched = "unset";

        make_addr("93.184.216.34", ports[i], &ss);
        r = policy_match_connect(p, (struct sockaddr *)&ss, "example.org",
                                 NULL, NULL, &matched);
        CHECK_MSG(r != NULL && r->action == POLICY_AUTO, "port %u",
                  ports[i]);
        CHECK_STR(matched, "example.org");
        make_addr("2001:db8::1", ports[i], &ss);
        CHECK_MSG(policy_match_connect(p, (struct sockaddr *)&ss, NULL, NULL,
                                       NULL, NULL) != NULL, "v6 port %u",
                  ports[i]);
    }
    for (i = 0; i < TLSSHIM_NELEMS(other); i++) {
        make_addr("93.184.216.34", other[i], &ss);
        CHECK_MSG(policy_match_connect(p, (struct sockaddr *)&ss,
                                       "example.org", NULL, NULL, NULL) ==
                  NULL, "port %u", other[i]);
    }
    policy_free(p);
    unit_row("%s", "");
}

/* --- files and permissions -------------------------------------------- */

static int
write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        return -1;
    fputs(text, f);
    if (fclose(f) != 0)
        return -1;
    return chmod(path, mode);
}

/* Give a file a group other than root's, so group-write counts. */
static void
set_other_group(const char *path)
{
    if (geteuid() == 0 && chown(path, (uid_t)-1, 1) == -1)
        perror("chown");
}

struct perm_row {
    const char *what;
    mode_t policy_mode;
    int other_group;  /* policy file's group is not root */
    mode_t key_mode;  /* 0: no key file on disk */
    mode_t pw_mode;   /* 0: no passphrase file on disk */
    int check_perms;
    const char *err;  /* NULL: loads; "%s" is the policy, "%k" the key */
};

static const struct perm_row perm_rows[] = {
    { "0644 policy", 0644, 0, 0, 0, 1, NULL },
    { "0600 policy", 0600, 0, 0, 0, 1, NULL },
    { "0444 policy", 0444, 0, 0, 0, 1, NULL },
    { "0666 policy", 0666, 0, 0, 0, 1,
      "P: policy file is writable by others (mode 0666)" },
    { "0646 policy", 0646, 0, 0, 0, 1,
      "P: policy file is writable by others (mode 0646)" },
    { "0664 policy, other group", 0664, 1, 0, 0, 1,
      "P: policy file is writable by others (mode 0664)" },
    { "0666 policy, not checked", 0666, 0, 0, 0, 0, NULL },
    { "0600 key", 0644, 0, 0600, 0, 1, NULL },
    { "0640 key", 0644, 0, 0640, 0, 1, NULL },
    { "0400 key and passphrase", 0644, 0, 0400, 0400, 1, NULL },
    { "0644 key", 0644, 0, 0644, 0, 1,
      "P:5: key file K is readable by every user (mode 0644)" },
    { "0604 key", 0644, 0, 0604, 0, 1,
      "P:5: key file K is readable by every user (mode 0604)" },
    { "0602 key", 0644, 0, 0602, 0, 1,
      "P:5: key file K is writable by others (mode 0602)" },
    { "0644 key, not checked", 0644, 0, 0644, 0, 0, NULL },
    { "0604 passphrase", 0644, 0, 0600, 0604, 1,
      "P:6: passphrase file W is readable by every user (mode 0604)" },
    { "0666 passphrase", 0644, 0, 0600, 0666, 1,
      "P:6: passphrase file W is writable by others (mode 0666)" },
};

static void
expand(char *out, size_t len, const char *fmt, const char *policy,
       const char *key, const char *pw)
{
    size_t n = 0;

    for (; *fmt != '\0' && n + 1 < len; fmt++) {
        const char *sub = *fmt == 'P' ? policy : *fmt == 'K' ? key :
                          *fmt == 'W' ? pw : NULL;
        if (sub != NULL) {
            n += (size_t)snprintf(out + n, len - n, "%s", sub);
            if (n >= len)
                n = len - 1;
        } else {
            out[n++] = *fmt;
        }
    }
    out[n] = '\0';
}

static void
test_permissions(void)
{
    char dir[] = "/tmp/test_policy.XXXXXX";
    char path[256], key[256], pw[256], text[1024], err[1024], want[1024];
    struct policy *p;
    size_t i;

    if (!CHECK(mkdtemp(dir) != NULL))
        return;
    snprintf(path, sizeof(path), "%s/p.conf", dir);
    snprintf(key, sizeof(key), "%s/k.pem", dir);
    snprintf(pw, sizeof(pw), "%s/pass", dir);
    snprintf(text, sizeof(text), "[r]\nconnect = :443\n"
             "cert_file = %s/c.pem\n\nkey_file = %s\npasswd_file = %s\n",
             dir, key, pw);

    for (i = 0; i < TLSSHIM_NELEMS(perm_rows); i++) {
        const struct perm_row *row = &perm_rows[i];

        unit_row("permissions: %s", row->what);
        unlink(key);
        unlink(pw);
        unlink(path);
        if (!CHECK(write_file(path, text, row->policy_mode) == 0))
            continue;
        if (row->other_group)
            set_other_group(path);
        if (row->key_mode != 0)
            CHECK(write_file(key, "key\n", row->key_mode) == 0);
        if (row->pw_mode != 0)
            CHECK(write_file(pw, "secret\n", row->pw_mode) == 0);
        p = policy_load(path, row->check_perms, err, sizeof(err));
        if (row->err == NULL) {
            CHECK_MSG(p != NULL, "unexpected error: %s", err);
        } else {
            expand(want, sizeof(want), row->err, path, key, pw);
            CHECK(p == NULL);
            CHECK_STR(err, want);
        }
        policy_free(p);
    }

    /* Group-writable by root's group is fine: root may write it anyway. */
    unit_row("permissions: 0664 policy, group root");
    unlink(path);
    if (CHECK(write_file(path, R, 0664) == 0) &&
        (geteuid() != 0 || chown(path, (uid_t)-1, 0) == 0)) {
        struct stat st;
        p = policy_load(path, 1, err, sizeof(err));
        if (stat(path, &st) == 0 && st.st_gid == 0)
            CHECK_MSG(p != NULL, "unexpected error: %s", err);
        policy_free(p);
    }

    unit_row("missing policy file");
    snprintf(want, sizeof(want), "%s/none.conf", dir);
    p = policy_load(want, 1, err, sizeof(err));
    CHECK(p == NULL);
    CHECK(strstr(err, "none.conf: cannot open policy file: ") != NULL);
    policy_free(p);

    unit_row("directory as policy");
    p = policy_load(dir, 1, err, sizeof(err));
    CHECK(p == NULL);
    snprintf(want, sizeof(want), "%s: policy file is not a regular file",
             dir);
    CHECK_STR(err, want);
    policy_free(p);

    unit_row("policy file over 1 MiB");
    {
        FILE *f = fopen(path, "w");
        if (CHECK(f != NULL)) {
            for (i = 0; i < 1024 * 1024 + 1; i++)
                fputc('\n', f);
            fclose(f);
            chmod(path, 0644);
            p = policy_load(path, 1, err, sizeof(err));
            CHECK(p == NULL);
            snprintf(want, sizeof(want), "%s: policy file is larger than 1 "
                     "MiB", path);
            CHECK_STR(err, want);
            policy_free(p);
        }
    }

    unit_row("syntax error names the file");
    if (CHECK(write_file(path, "[r]\nconnect = :443\nbogus = 1\n", 0644) ==
              0)) {
        p = policy_load(path, 1, err, sizeof(err));
        CHECK(p == NULL);
        snprintf(want, sizeof(want), "%s:3: unknown key \"bogus\" in [r]",
                 path);
        CHECK_STR(err, want);
        policy_free(p);
    }

    unit_row("file loads with its name");
    if (CHECK(write_file(path, R, 0644) == 0)) {
        p = policy_load(path, 1, err, sizeof(err));
        if (CHECK_MSG(p != NULL, "error: %s", err)) {
            CHECK_STR(p->file, path);
            CHECK_STR(p->rules[0].file, path);
            CHECK_INT(p->embedded, 0);
        }
        policy_free(p);
    }
    unit_row("%s", "");

    unlink(key);
    unlink(pw);
    unlink(path);
    rmdir(dir);
}

int
main(void)
{
    test_parse_rows();
    test_exact_messages();
    test_pattern_rows();
    test_version_rows();
    test_seclevel_rows();
    test_field_rows();
    test_strings();
    test_limits();
    test_match_rows();
    test_name_rows();
    test_listen_rows();
    test_write();
    test_explain();
    test_embedded();
    test_permissions();
    return unit_finish();
}
