#!/usr/bin/perl
# The differential test of tlsshim's host name matcher against
# IO::Socket::SSL's verify_hostname_of_cert (tests/bats/verify_names.bats).
#
#   ioss_names.pl generate                 cases, on standard output
#   ioss_names.pl answer CASES CLI_OUT     IO::Socket::SSL's answers, on the
#                                          certificates verify_cli made
#   ioss_names.pl compare CASES CLI_OUT PERL_OUT DIVERGENCES
#   ioss_names.pl count CASES              cases per kind
#
# A case line is "ID<TAB>SCHEMES<TAB>IDENTITY<TAB>ENTRY...", the format
# tests/unit/verify_cli.c reads; the generation is deterministic (a fixed
# seed; the public suffix cases also follow the system's list), so that
# tests/verify/divergences can list cases by their text.
# An answer is two digits per scheme: verifycn_publicsuffix on, then off
# (IO::Socket::SSL's default list, then '').
use strict;
use warnings;
use feature 'unicode_strings';

# Every scheme of IO::Socket::SSL's table, aliases included.
my @ALL_SCHEMES = qw(default http www rfc2818 rfc3920 xmpp rfc4217 ftp
    rfc4513 ldap rfc2595 smtp rfc4642 imap pop3 acap rfc5539 nntp rfc5538
    netconf rfc5425 syslog rfc5953 snmp rfc5971 gist rfc5922 sip none);

my $cmd = shift @ARGV // '';
if ($cmd eq 'generate') {
    generate();
} elsif ($cmd eq 'answer' && @ARGV == 2) {
    answer(@ARGV);
} elsif ($cmd eq 'compare' && @ARGV == 4) {
    exit(compare(@ARGV));
} elsif ($cmd eq 'count' && @ARGV == 1) {
    count(@ARGV);
} else {
    die "usage: $0 generate | answer CASES CLI_OUT | "
      . "compare CASES CLI_OUT PERL_OUT DIVERGENCES | count CASES\n";
}
exit 0;

# --- escaping ---------------------------------------------------------------

# Bytes outside printable ASCII, and '%', as %XX (so TAB and newline too).
# An identity is characters, written as UTF-8; certificate entries are
# bytes.
sub esc {
    my ($s, $characters) = @_;
    if ($characters) {
        utf8::encode($s);
    } elsif ($s =~ /[^\x00-\xff]/) {
        die "entry \"$s\" is not bytes\n";
    }
    $s =~ s/([^!-~]|%)/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub unesc {
    my $s = shift;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

# --- generation --------------------------------------------------------------

my (%seen, $nid);

# emit KIND, SCHEMES (array ref), IDENTITY (characters), ENTRIES...
# where an entry is "type:value" with the value as bytes (see
# tests/unit/namecert.h for the types).  A case already emitted is not
# emitted again.
sub emit {
    my ($kind, $schemes, $identity, @entries) = @_;
    my $text = join("\t", esc($identity, 1),
        map { my ($t, $v) = split /:/, $_, 2; "$t:" . esc($v) } @entries);
    return if $seen{$text}++;
    $nid++;
    print join("\t", "$kind-$nid", join(',', @$schemes), $text), "\n";
}

# The A-label form of a name, as IO::Socket::SSL converts identities.
sub alabel {
    my $s = shift;
    require URI::_idna;
    return URI::_idna::encode($s);
}

sub generate {
    $nid = 0;
    binmode STDOUT;
    gen_matrix();
    gen_ip();
    gen_idn();
    gen_random();
    gen_psl();
    gen_divergent();
}

# Certificate names against identities around one domain: every wildcard
# position, case, trailing dots, white space, control bytes, IDN prefixes,
# in a dNSName SAN or in the CN with and without other SANs.
sub gen_matrix {
    for my $d ('example.com', 'sub.example.co.uk', 'foo.kawasaki.jp') {
        my @names = ($d, "www.$d", uc("www.$d"), "www.$d.", "www.$d..",
            "*.$d", "*.$d.", uc("*.$d"), "w*.$d", "*w.$d", "w*w.$d",
            "ww*.$d", "*ww.$d", "f*.$d", "*-x.$d", "x-*.$d", "**.$d",
            "*.*.$d", "www.*.$d", "*www.$d", "*", "*.", "*..$d", ".$d",
            "*x", "x*", "*.com", "xn--*.$d", "x*.$d", "X*.$d",
            "*.xn--bcher-kva.$d", "_*.$d", "*_.$d", " *.$d ", "\t*.$d",
            "\x0b*.$d\r\f", "\xa0*.$d", "*.$d\x85",
            "www.$d\0.evil.com", "w\xffw.$d", "*\0.$d", "www.$d\n",
            "www.$d\nx");
        my @ids = ($d, "www.$d", "WWW.$d", "www.$d.", "www.$d..", "w.$d",
            "ww.$d", "wxw.$d", "wwx.$d", "xww.$d", "foo.$d", "f.$d",
            "a-x.$d", "x-a.$d", "a.b.$d", "a.www.$d", "_.$d", "a_b.$d",
            "-.$d", "xn--bcher-kva.$d", "b\x{fc}cher.$d", "x.$d", "*.$d",
            "www..$d", ".www.$d", "ww w.$d", "x", "com", "1.2.3.4");
        for my $n (@names) {
            my @certs = (["dns:$n"], ["cn:$n"]);
            # the CN beside SANs of each kind, around the first domain
            push @certs, ["dns:other.example.net", "cn:$n"],
                ["email:x\@$d", "cn:$n"], ["ip:192.0.2.1", "cn:$n"]
              if $d eq 'example.com';
            for my $c (@certs) {
                # a UTF8String CN must be UTF-8
                next if grep { /^cn:.*[\x80-\xff]/ } @$c;
                emit('matrix', \@ALL_SCHEMES, $_, @$c) for @ids;
            }
        }
    }
    # CN string types, several CNs, SANs of other kinds, empty SANs, a
    # second subjectAltName extension.
    my $d = 'example.com';
    my @certs = (["cnt:www.$d"], ["cnp:www.$d"], ["cnb:www.$d"],
        ["cnt:w\xe9w.$d"], ["cn:a.$d", "cn:www.$d"], ["cn:www.$d", "cn:a.$d"],
        ["o:www.$d"], ["dns:", "cn:www.$d"], ["dns: ", "cn:www.$d"],
        ["uri:https://www.$d/", "cn:www.$d"], ["dns:a.$d", "dns2:www.$d"],
        ["dns:a.$d", "dns:www.$d", "dns:*.$d"], ["dns:*.$d", "cn:a.$d"],
        ["dns:a.$d", "cn:*.$d"], []);
    for my $c (@certs) {
        emit('matrix', \@ALL_SCHEMES, $_, @$c)
          for ("www.$d", "a.$d", "w\x{e9}w.$d", "b.$d");
    }
}

# IP literals: SANs of both families and odd lengths, addresses in the CN
# (ip_in_cn), addresses in dNSName SANs, and malformed literals.
sub gen_ip {
    my @certs = (["ip:192.0.2.1"], ["ip:::1"], ["ip:2001:db8::1"],
        ["ip:::ffff:192.0.2.1"], ["iphex:c0000201ff"], ["iphex:c00002"],
        ["ip:0.0.0.0"], ["cn:192.0.2.1"], ["cn:192.0.2.1", "dns:www.example.com"],
        ["cn:192.0.2.1", "ip:198.51.100.7"], ["cn:192.0.2.1", "email:a\@b.c"],
        ["cn:::1"], ["cn:::1", "dns:x.example.com"], ["cn:2001:DB8::1"],
        ["cn:2001:db8::1"], ["cn:192.0.2.1."], ["cn:192.0.2.01"],
        ["cn:01.2.3.4"], ["dns:192.0.2.1"], ["dns:*.0.2.1"], ["dns:::1"],
        ["dns:a.example.com", "ip2:192.0.2.1"], ["ip:198.51.100.7", "cn:192.0.2.1"],
        ["cn:0.0.0.0"], ["dns:1.2.3.4", "cn:1.2.3.4"], ["ip:1.2.3.4"]);
    my @ids = ('192.0.2.1', '192.0.2.1.', '192.0.2', '192.0.2.1.5',
        '256.0.2.1', '0.0.0.0', '::1', '0:0:0:0:0:0:0:1', '::0001',
        '::ffff:192.0.2.1', '::ffff:c000:201', '2001:db8::1', '2001:DB8::1',
        '[::1]', '::1%lo', 'fe80::1%eth0', '192.0.2.1a', '192.0.2.1:443', '::g',
        '198.51.100.7', '1.2.3.4', '1.2.3.4.', '99999999999.1.1.1');
    for my $c (@certs) {
        emit('ip', \@ALL_SCHEMES, $_, @$c) for @ids;
    }
}

# Internationalised names: U-label identities (IO::Socket::SSL converts
# them with URI::_idna; tlsshim with its own Punycode) against A-labels,
# wildcards over A-labels, and U-labels that cannot be converted.
sub gen_idn {
    my $d = 'example.com';
    my @u = ("b\x{fc}cher", "B\x{fc}cher", "B\x{dc}CHER", "m\x{fc}nchen",
        "\x{65e5}\x{672c}\x{8a9e}", "\x{43f}\x{440}\x{438}\x{43c}\x{435}\x{440}",
        "\x{3b5}\x{3bb}\x{3bb}\x{3b7}\x{3bd}\x{3b9}\x{3ba}\x{3ac}",
        "stra\x{df}e", "\x{ff}", "a\x{e9}-b_c", "\x{f6}\x{f6}\x{f6}",
        "\x{1f600}", "d\x{e9}j\x{e0}-vu", "\x{5d0}\x{5d1}");
    for my $u (@u) {
        my $a = alabel(lc $u);
        my @certs = (["dns:$a.$d"], ["dns:" . uc($a) . ".$d"], ["cn:$a.$d"],
            ["dns:*.$d"], ["dns:x*.$d"], ["dns:xn--*.$d"], ["dns:*.$a.$d"],
            ["dns:" . substr($a, 0, 5) . "*.$d"], ["cn:*.$d"], ["cn:x*.$d"],
            ["dns:" . substr($a, 4) . ".$d"]);
        for my $c (@certs) {
            emit('idn', \@ALL_SCHEMES, $_, @$c)
              for ("$u.$d", "www.$u.$d", "$u.$d.", "$a.$d");
        }
    }
    # Capital sigma lowercases to a plain sigma, even at the end of a word.
    for my $a (map { alabel($_) } "\x{3c3}\x{3b1}\x{3c2}", "\x{3c3}\x{3b1}\x{3c3}") {
        emit('idn', \@ALL_SCHEMES, "\x{3a3}\x{391}\x{3a3}.$d", "dns:$a.$d");
    }
    # Identities that do not convert: an empty label, a label too long, a
    # label that already has the ACE prefix, white space, a '*'.
    my @bad = ("b\x{fc}cher..$d", ".b\x{fc}cher.$d", ("a" x 70) . ".b\x{fc}cher.$d",
        ("\x{fc}" x 40) . ".$d", "xn--\x{fc}.$d", "b\x{fc}cher $d",
        "*.b\x{fc}cher.$d", "b\x{fc}cher.$d\x{e9}", "\x{fc}");
    for my $id (@bad) {
        emit('idn', \@ALL_SCHEMES, $id, $_)
          for ("dns:*.$d", "dns:xn--bcher-kva.$d", "cn:*.$d");
    }
}

# Where tlsshim is stricter than IO::Socket::SSL, or converts U-labels
# the way IDNA does rather than as Perl's lc: tests/verify/divergences
# lists each of these cases, and the comparison checks that they still
# differ.
sub gen_divergent {
    my $d = 'example.com';
    my $k = 'divergent';
    # A line feed ends what Perl's '.' and '$' see of a name.
    emit($k, \@ALL_SCHEMES, "www.$d", "dns:*.$d\nx");
    emit($k, \@ALL_SCHEMES, "www.$d", "cn:*.$d\n");
    emit($k, \@ALL_SCHEMES, "www.$d", "cn:*.$d\nx");
    emit($k, \@ALL_SCHEMES, "ww.$d", "dns:w*.$d\n.evil.com");
    # The xn-- test ignores case, and covers wildcards that end a label.
    emit($k, \@ALL_SCHEMES, "XN--BCHER-KVA.$d", "dns:x*.$d");
    emit($k, \@ALL_SCHEMES, "Xn--bcher-kva.$d", "cn:xn--*.$d");
    emit($k, \@ALL_SCHEMES, "xn--bcher-kva.$d", "dns:*-kva.$d");
    emit($k, \@ALL_SCHEMES, "xn--bcher-kva.$d", "dns:*n--bcher-kva.$d");
    emit($k, \@ALL_SCHEMES, "b\x{fc}cher.$d", "dns:*kva.$d");
    emit($k, \@ALL_SCHEMES, "\x{65e5}\x{672c}\x{8a9e}.$d", "cn:*119e.$d");
    # IPv4 parts with leading zeros.
    emit($k, \@ALL_SCHEMES, '01.2.3.4', 'ip:1.2.3.4');
    emit($k, \@ALL_SCHEMES, '192.0.2.01', 'cn:192.0.2.01');
    emit($k, \@ALL_SCHEMES, '00.0.0.0', 'ip:0.0.0.0');
    # NFKC makes "fi" of the ligature.
    emit($k, \@ALL_SCHEMES, "\x{fb01}x.$d", "dns:fix.$d");
}

# Random names and identities from a small alphabet, with the names made
# from the identity by mutation so that many of them match.
sub gen_random {
    srand(6125);
    my @label = ('a', 'b', 'ab', 'www', 'w', 'xn--bcher-kva', 'xn--x', 'x-y',
        'a_b', '-', '_', '0', '9z', 'A', 'WwW', 'co', 'uk', 'com', 'org',
        'jp', 'kawasaki', 'city', 'ck', 'github', 'io', 'bd', 'example');
    my $pick = sub { $_[int(rand(@_))] };
    for my $i (1 .. 1500) {
        my $n = 1 + int(rand(4));
        my @l = map { $pick->(@label) } 1 .. $n;
        my $id = join('.', @l);
        $id .= '.' if rand() < 0.05;
        my $name = mutate($id, $pick);
        my @c = rand() < 0.6 ? ("dns:$name")
              : rand() < 0.5 ? ("cn:$name")
              : ("dns:" . mutate($id, $pick), "cn:$name");
        emit('random', \@ALL_SCHEMES, $id, @c);
    }
}

sub mutate {
    my ($id, $pick) = @_;
    my @l = split /\./, $id, -1;
    my $r = rand();
    my $first = $l[0] // '';
    if ($r < 0.3) {
        $l[0] = '*';
    } elsif ($r < 0.5 && length $first) {
        my $at = int(rand(length($first) + 1));
        substr($first, $at, int(rand(length($first) - $at + 1))) = '*';
        $l[0] = $first;
    } elsif ($r < 0.6) {
        my $at = int(rand(@l));
        $l[$at] = '*';
    } elsif ($r < 0.7) {
        unshift @l, '*';
    } elsif ($r < 0.8) {
        $l[0] = uc $first;
    } elsif ($r < 0.85) {
        push @l, '';
    }
    my $name = join('.', @l);
    $name = '*' . $name if rand() < 0.05;
    return $name;
}

# Wildcards next to every rule of the public suffix lists: IO::Socket::SSL's
# own (the ICANN section) and the system's (libpsl's source), so that a
# difference between the two lists shows up as a case.
sub gen_psl {
    my %rules;
    require IO::Socket::SSL::PublicSuffix;
    my $data = IO::Socket::SSL::PublicSuffix::_default_data();
    for (split /\n/, $data) {
        s{//.*}{};
        s/\s+$//;
        $rules{$_} = 1 if $_ ne '';
    }
    my $system = '/usr/share/publicsuffix/public_suffix_list.dat';
    if (open(my $fh, '<:encoding(UTF-8)', $system)) {
        my $icann = 0;
        while (<$fh>) {
            $icann = 1 if m{===BEGIN ICANN DOMAINS===};
            last if m{===END ICANN DOMAINS===};
            next unless $icann;
            s{//.*}{};
            s/\s+$//;
            next if $_ eq '';
            my $not = s/^!//;
            my $r = eval { /[^\x00-\x7f]/ ? alabel($_) : $_ };
            $rules{($not ? '!' : '') . $r} = 1 if defined $r;
        }
    }
    for my $rule (sort keys %rules) {
        (my $r = $rule) =~ s/^!//;
        $r =~ s/\*/x/g;
        (my $parent = $r) =~ s/^[^.]*\.?//;
        emit('psl', ['default'], "a.$r", "dns:*.$r");
        emit('psl', ['default'], $r, "dns:*.$parent") if $parent ne '';
    }
    # The private section (github.io, uk.com, ...) is no public suffix to
    # either side: wildcards right below its rules are accepted.
    my ($private) = IO::Socket::SSL::PublicSuffix::_builtin_data()
      =~ m{===BEGIN PRIVATE DOMAINS===(.*)===END PRIVATE DOMAINS===}s;
    for (sort split /\n/, $private // '') {
        s{//.*}{};
        s/\s+$//;
        next if $_ eq '' || /[^\x00-\x7f]/;
        (my $r = $_) =~ s/^!//;
        $r =~ s/\*/x/g;
        emit('psl', ['default'], "a.$r", "dns:*.$r");
    }
}

# --- IO::Socket::SSL's side ---------------------------------------------------

# IO::Socket::SSL's answers for the certificates in verify_cli's output:
# "ID<TAB>ANSWERS" lines.  The identity is given as characters, as
# IO::Socket::SSL expects (it converts non-ASCII names with URI::_idna);
# an exception (URI::_idna croaks on labels it cannot convert) is a no.
sub answer {
    my ($cases_file, $cli_out) = @_;
    require IO::Socket::SSL;
    require Net::SSLeay;
    require MIME::Base64;
    my %case = read_cases($cases_file);
    open(my $in, '<', $cli_out) or die "$cli_out: $!\n";
    local $SIG{__WARN__} = sub { };
    while (my $line = <$in>) {
        chomp $line;
        my ($id, undef, $b64) = split /\t/, $line;
        my $c = $case{$id} or die "$cli_out: unknown case \"$id\"\n";
        my $der = MIME::Base64::decode_base64($b64 // '');
        my $bio = Net::SSLeay::BIO_new(Net::SSLeay::BIO_s_mem());
        Net::SSLeay::BIO_write($bio, $der);
        my $x = Net::SSLeay::d2i_X509_bio($bio);
        Net::SSLeay::BIO_free($bio);
        die "$cli_out: case $id: unreadable certificate\n" unless $x;
        my $identity = unesc((split /\t/, $c->[1])[0]);
        utf8::decode($identity);
        my $answers = '';
        for my $scheme (@{$c->[0]}) {
            for my $publicsuffix (undef, '') {
                my $ok = eval {
                    IO::Socket::SSL::verify_hostname_of_cert($identity, $x,
                        $scheme, $publicsuffix);
                };
                $answers .= $ok ? '1' : '0';
            }
        }
        Net::SSLeay::X509_free($x);
        print "$id\t$answers\n";
    }
}

# --- the comparison ---------------------------------------------------------

# Every answer of verify_cli must equal IO::Socket::SSL's, except where
# DIVERGENCES lists the case.  A listed case must still differ (psl-list
# cases excepted: another system's lists may agree), and where tlsshim is
# meant to be stricter it must be tlsshim that says no.  Returns the exit
# status.
sub compare {
    my ($cases_file, $cli_out, $perl_out, $div_file) = @_;
    my %case = read_cases($cases_file);
    my %shim = read_answers($cli_out);
    my %perl = read_answers($perl_out);
    my (%div, @div, %text, @errors, %seen_tag);
    my $compared = 0;

    open(my $fh, '<', $div_file) or die "$div_file: $!\n";
    while (my $line = <$fh>) {
        chomp $line;
        next if $line eq '' || $line =~ /^#/;
        my ($tag, $schemes, $ps, $text) = split /\t/, $line, 4;
        die "$div_file:$.: bad line\n" unless defined $text;
        die "$div_file:$.: unknown reason \"$tag\"\n"
          unless $tag =~ /^(?:psl-list|newline|xn-case|xn-partial|ipv4-zero|nfkc)$/;
        my $d = { tag => $tag, line => $., text => $text, used => 0,
            schemes => { map { $_ => 1 } split /,/, $schemes }, ps => $ps };
        push @div, $d;
        push @{$div{$text}}, $d;
    }
    $text{$_->[1]} = 1 for values %case;

    for my $id (sort { idnum($a) <=> idnum($b) } keys %case) {
        my ($schemes, $text) = @{$case{$id}};
        my ($s, $p) = ($shim{$id}, $perl{$id});
        my $want = 2 * @$schemes;
        if (!defined $s || !defined $p || length($s) != $want ||
            length($p) != $want) {
            push @errors, "case $id: missing answers";
            next;
        }
        for my $i (0 .. $#$schemes) {
            for my $j (0, 1) {
                my ($sa, $pa) = (substr($s, 2 * $i + $j, 1),
                                 substr($p, 2 * $i + $j, 1));
                my $ps = $j == 0 ? 1 : 0;
                $compared++;
                next if $sa eq $pa;
                my ($d) = grep {
                    ($_->{schemes}{'*'} || $_->{schemes}{$schemes->[$i]})
                      && ($_->{ps} eq '*' || $_->{ps} eq $ps)
                } @{$div{$text} // []};
                my $what = "case $id, scheme $schemes->[$i], publicsuffix "
                  . "$ps: tlsshim $sa, IO::Socket::SSL $pa:\n    $text";
                if (!$d) {
                    push @errors, "unlisted divergence: $what";
                    next;
                }
                $d->{used}++;
                $seen_tag{$d->{tag}}++;
                push @errors, "divergence in the wrong direction "
                  . "($div_file:$d->{line}): $what"
                  if $d->{tag} =~ /^(?:newline|xn-case|xn-partial|ipv4-zero)$/
                  && !($sa eq '0' && $pa eq '1');
            }
        }
    }
    for my $d (@div) {
        if (!$text{$d->{text}}) {
            push @errors, "$div_file:$d->{line}: no such case generated";
        } elsif (!$d->{used} && $d->{tag} ne 'psl-list') {
            push @errors, "$div_file:$d->{line}: listed, but the answers agree";
        }
    }
    printf "%d cases, %d answers compared; listed divergences seen: %s\n",
        scalar(keys %case), $compared,
        join(', ', map { "$_ $seen_tag{$_}" } sort keys %seen_tag) || 'none';
    print "$_\n" for @errors;
    return @errors ? 1 : 0;
}

sub idnum {
    my ($n) = $_[0] =~ /(\d+)$/;
    return $n // 0;
}

# "ID<TAB>ANSWERS[<TAB>...]" lines: id -> answers.
sub read_answers {
    my ($file) = @_;
    my %a;
    open(my $fh, '<', $file) or die "$file: $!\n";
    while (my $line = <$fh>) {
        chomp $line;
        my ($id, $answers) = split /\t/, $line;
        $a{$id} = $answers if defined $answers;
    }
    return %a;
}

# The cases of a file: id -> [schemes, identity, text].
sub read_cases {
    my ($file) = @_;
    my %case;
    open(my $fh, '<', $file) or die "$file: $!\n";
    while (my $line = <$fh>) {
        chomp $line;
        next if $line eq '' || $line =~ /^#/;
        my ($id, $schemes, $text) = split /\t/, $line, 3;
        $case{$id} = [[split /,/, $schemes], $text];
    }
    return %case;
}

sub count {
    my %case = read_cases(@_);
    my %n;
    $n{(split /-/, $_)[0]}++ for keys %case;
    print "$_ $n{$_}\n" for sort keys %n;
}
