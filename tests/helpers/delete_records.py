#!/usr/bin/env python3
"""delete_records.py BROKERS TOPIC PARTITION OFFSET

Deletes the records of TOPIC's PARTITION before OFFSET (Kafka's
DeleteRecords, as kafka-delete-records.sh does), so that its low
watermark moves there: what retention does, now.  The stack's Kafka
install has no command-line tools, so this calls the system's
librdkafka (the one dp links) through ctypes.  Exits 0 when the broker
did it, else 1 with the error on stderr.
"""
import ctypes
import ctypes.util
import sys


class TopicPartition(ctypes.Structure):
    # rd_kafka_topic_partition_t (librdkafka 2.0.2, rdkafka.h)
    _fields_ = [
        ("topic", ctypes.c_char_p),
        ("partition", ctypes.c_int32),
        ("offset", ctypes.c_int64),
        ("metadata", ctypes.c_void_p),
        ("metadata_size", ctypes.c_size_t),
        ("opaque", ctypes.c_void_p),
        ("err", ctypes.c_int),
        ("_private", ctypes.c_void_p),
    ]


class TopicPartitionList(ctypes.Structure):
    _fields_ = [
        ("cnt", ctypes.c_int),
        ("size", ctypes.c_int),
        ("elems", ctypes.POINTER(TopicPartition)),
    ]


RD_KAFKA_PRODUCER = 0
RD_KAFKA_EVENT_DELETERECORDS_RESULT = 0x80  # rdkafka.h


def main():
    brokers, topic, partition, offset = sys.argv[1:5]
    lib = ctypes.CDLL(ctypes.util.find_library("rdkafka") or "librdkafka.so.1")
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    lib.rd_kafka_conf_new.restype = vp
    lib.rd_kafka_conf_set.argtypes = [vp, cp, cp, cp, ctypes.c_size_t]
    lib.rd_kafka_new.restype = vp
    lib.rd_kafka_new.argtypes = [ctypes.c_int, vp, cp, ctypes.c_size_t]
    lib.rd_kafka_topic_partition_list_new.restype = ctypes.POINTER(TopicPartitionList)
    lib.rd_kafka_topic_partition_list_add.restype = ctypes.POINTER(TopicPartition)
    lib.rd_kafka_topic_partition_list_add.argtypes = [
        ctypes.POINTER(TopicPartitionList), cp, ctypes.c_int32]
    lib.rd_kafka_DeleteRecords_new.restype = vp
    lib.rd_kafka_DeleteRecords_new.argtypes = [ctypes.POINTER(TopicPartitionList)]
    lib.rd_kafka_queue_new.restype = vp
    lib.rd_kafka_queue_new.argtypes = [vp]
    lib.rd_kafka_DeleteRecords.argtypes = [vp, ctypes.POINTER(vp), ctypes.c_size_t, vp, vp]
    lib.rd_kafka_queue_poll.restype = vp
    lib.rd_kafka_queue_poll.argtypes = [vp, ctypes.c_int]
    lib.rd_kafka_event_type.argtypes = [vp]
    lib.rd_kafka_event_error.argtypes = [vp]
    lib.rd_kafka_event_error_string.restype = cp
    lib.rd_kafka_event_error_string.argtypes = [vp]
    lib.rd_kafka_event_DeleteRecords_result.restype = vp
    lib.rd_kafka_event_DeleteRecords_result.argtypes = [vp]
    lib.rd_kafka_DeleteRecords_result_offsets.restype = ctypes.POINTER(TopicPartitionList)
    lib.rd_kafka_DeleteRecords_result_offsets.argtypes = [vp]
    lib.rd_kafka_err2str.restype = cp
    lib.rd_kafka_event_destroy.argtypes = [vp]

    errstr = ctypes.create_string_buffer(512)
    conf = lib.rd_kafka_conf_new()
    if lib.rd_kafka_conf_set(conf, b"bootstrap.servers", brokers.encode(), errstr, 512):
        sys.exit("delete_records: " + errstr.value.decode())
    rk = lib.rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, 512)
    if not rk:
        sys.exit("delete_records: " + errstr.value.decode())
    tpl = lib.rd_kafka_topic_partition_list_new(1)
    lib.rd_kafka_topic_partition_list_add(tpl, topic.encode(), int(partition)).contents.offset = \
        int(offset)
    dr = vp(lib.rd_kafka_DeleteRecords_new(tpl))
    q = lib.rd_kafka_queue_new(rk)
    lib.rd_kafka_DeleteRecords(rk, ctypes.byref(dr), 1, None, q)
    ev = lib.rd_kafka_queue_poll(q, 30000)
    if not ev:
        sys.exit("delete_records: no answer within 30 s")
    if lib.rd_kafka_event_error(ev):
        sys.exit("delete_records: " + lib.rd_kafka_event_error_string(ev).decode())
    res = lib.rd_kafka_DeleteRecords_result_offsets(lib.rd_kafka_event_DeleteRecords_result(ev))
    for i in range(res.contents.cnt):
        e = res.contents.elems[i]
        if e.err:
            sys.exit("delete_records: %s [%d]: %s"
                     % (e.topic.decode(), e.partition, lib.rd_kafka_err2str(e.err).decode()))
    lib.rd_kafka_event_destroy(ev)


if __name__ == "__main__":
    main()
