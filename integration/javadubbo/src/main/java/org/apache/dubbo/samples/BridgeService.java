package org.apache.dubbo.samples;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Date;
import java.util.List;
import java.util.Map;

/**
 * The service meshgate's Dubbo2 bridge tests call: every kind of argument
 * and result JSON maps onto (primitives, boxed types, char, POJOs, nested
 * collections, arrays, Date, BigDecimal, BigInteger, enums, byte[]), a
 * method that throws and a slow one.
 */
public interface BridgeService {
    String describe(int i, long l, double d, boolean b, String s, char c, short sh, byte by, float f);

    Map<String, Long> totals(Map<String, List<Long>> groups);

    User oldest(List<User> users);

    Date later(Date when, int days);

    BigDecimal doubled(BigDecimal d);

    BigInteger square(BigInteger i);

    Color next(Color c);

    byte[] reverse(byte[] b);

    int sum(int[] xs);

    String join(String[] parts, Integer sep);

    String fail(String msg);

    String sleep(long ms);
}
