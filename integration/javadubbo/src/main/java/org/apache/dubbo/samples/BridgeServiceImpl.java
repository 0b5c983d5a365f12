package org.apache.dubbo.samples;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Date;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** Deterministic answers that show what arrived. */
public class BridgeServiceImpl implements BridgeService {
    private final String instance;

    public BridgeServiceImpl(String instance) {
        this.instance = instance;
    }

    @Override
    public String describe(int i, long l, double d, boolean b, String s, char c, short sh, byte by, float f) {
        return "int=" + i + " long=" + l + " double=" + d + " boolean=" + b + " string=" + s
                + " char=" + c + " short=" + sh + " byte=" + by + " float=" + f + " from " + instance;
    }

    @Override
    public Map<String, Long> totals(Map<String, List<Long>> groups) {
        Map<String, Long> out = new HashMap<>();
        groups.forEach((k, vs) -> out.put(k, vs.stream().mapToLong(Long::longValue).sum()));
        return out;
    }

    @Override
    public User oldest(List<User> users) {
        User oldest = null;
        for (User u : users) {
            if (oldest == null || u.getAge() > oldest.getAge()) {
                oldest = u;
            }
        }
        return oldest;
    }

    @Override
    public Date later(Date when, int days) {
        return new Date(when.getTime() + days * 86_400_000L);
    }

    @Override
    public BigDecimal doubled(BigDecimal d) {
        return d.add(d);
    }

    @Override
    public BigInteger square(BigInteger i) {
        return i.multiply(i);
    }

    @Override
    public Color next(Color c) {
        return Color.values()[(c.ordinal() + 1) % Color.values().length];
    }

    @Override
    public byte[] reverse(byte[] b) {
        byte[] out = new byte[b.length];
        for (int i = 0; i < b.length; i++) {
            out[i] = b[b.length - 1 - i];
        }
        return out;
    }

    @Override
    public int sum(int[] xs) {
        int s = 0;
        for (int x : xs) {
            s += x;
        }
        return s;
    }

    @Override
    public String join(String[] parts, Integer sep) {
        return String.join(sep == null ? "," : String.valueOf(sep), parts);
    }

    @Override
    public String fail(String msg) {
        throw new IllegalArgumentException("refused: " + msg);
    }

    @Override
    public String sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return "slept " + instance;
    }
}
