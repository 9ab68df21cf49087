return {num(s.lrate), num(cubic()), num(math.max(0, s.till - now))}
