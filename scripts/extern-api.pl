#!/usr/bin/perl
# Marks the public API of libredline in its headers: every function declared at the start of a
# line with an rdl_ name, and every extern rdl_ variable, gets RDL_EXTERN (include/redline/common.h),
# which is what libredline.so exports under -fvisibility=hidden. Each header gets the
# #include "redline/common.h" it then needs. A declaration the prefix pushes past 100 columns is
# wrapped again at its commas. Running it twice changes nothing, so it can follow any header edit:
#   perl scripts/extern-api.pl include/redline/*.h
# tests/symbols.sh checks that every function it would mark is exported by libredline.so.
use strict;
use warnings;

my $WIDTH = 100;

# A prefixed declaration: its continuation lines move right by the prefix's width; if a line then
# passes $WIDTH, the declaration is filled again with its arguments aligned after '('.
sub wrap {
    my ($d) = @_;
    (my $kept = $d) =~ s/\n(?=[ \t])/\n           /g;
    return $kept unless grep { length($_) > $WIDTH } split /\n/, $kept;
    (my $flat = $d) =~ s/\n\s*/ /g;
    return $flat if length($flat) <= $WIDTH;
    my $indent = ' ' x (index($flat, '(') + 1);
    my @parts = split /(?<=,) /, $flat;
    my $out = shift @parts;
    my $line = $out;
    for my $p (@parts) {
        if (length($line) + 1 + length($p) > $WIDTH) {
            $out .= "\n$indent$p";
            $line = "$indent$p";
        } else {
            $out .= " $p";
            $line .= " $p";
        }
    }
    return $out;
}

local $/;
for my $file (@ARGV) {
    open(my $in, '<', $file) or die "$file: $!\n";
    my $text = <$in>;
    close($in);
    my $orig = $text;
    if ($file !~ m{(^|/)common\.h$} && $text !~ m{"redline/common\.h"}) {
        $text =~ s{((?:^#include <[^>]+>\n)+)}{$1#include "redline/common.h"\n}m;
    }
    $text =~ s{^((?:const |unsigned |struct |enum )*[A-Za-z_]\w*[ *]+rdl_\w+\s*\([^;]*;)}
              {wrap("RDL_EXTERN $1")}mge;
    $text =~ s{^extern (?=.*\brdl_)}{RDL_EXTERN extern }mg;
    next if $text eq $orig;
    open(my $out, '>', $file) or die "$file: $!\n";
    print $out $text;
    close($out);
}
