return {num(s.st), num(s.gen), num(s.till), num(#s.win), num(s.nf), num(s.cf), num(s.trips)}
